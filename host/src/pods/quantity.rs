//! Kubernetes quantities ("500m", "2G", "1.5Gi", "1e3") read the way KubeRay's Go code reads them.
//!
//! The pod builder needs three views of a quantity: the integer `ray start` gets (rounded up, like
//! Go's `Quantity.Value()`), an approximate float for the `--resources` JSON, and an exact value to
//! compare two spellings of the same amount ("2G" and "2000000000").

use std::fmt;

/// Why a string is not a quantity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuantityError(&'static str);

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedQuantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

impl ParsedQuantity {
    /// Parses the Kubernetes quantity grammar: a signed decimal number and an optional suffix
    /// (`Ki`…`Ei`, `n` `u` `m` `k` `M` `G` `T` `P` `E`, or an `e`/`E` exponent).
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            Some(_) => (false, text),
            None => return Err(QuantityError("empty quantity")),
        };
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(QuantityError("a quantity starts with a number"));
        }
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        // 30 significant digits is far beyond anything a Pod spec holds, and keeps i128 exact.
        if digits.len() > 30 {
            return Err(QuantityError("too many digits"));
        }
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| QuantityError("bad number"))?
        };
        if negative {
            mantissa = -mantissa;
        }
        let (suffix_exp10, exp2) = match suffix {
            "" => (0, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            exponent if exponent.starts_with(['e', 'E']) => {
                let value: i32 = exponent[1..]
                    .parse()
                    .map_err(|_| QuantityError("bad exponent"))?;
                if !(-60..=60).contains(&value) {
                    return Err(QuantityError("exponent out of range"));
                }
                (value, 0)
            }
            _ => return Err(QuantityError("unknown suffix")),
        };
        let fraction_len =
            i32::try_from(fraction.len()).map_err(|_| QuantityError("too many digits"))?;
        Ok(Self {
            mantissa,
            exp10: suffix_exp10 - fraction_len,
            exp2,
        })
    }

    /// The value as an exact fraction `numerator / denominator`, if it fits in i128.
    fn fraction(self) -> Option<(i128, i128)> {
        let mut numerator = self.mantissa.checked_mul(1i128.checked_shl(self.exp2)?)?;
        let mut denominator = 1i128;
        let power = 10i128.checked_pow(self.exp10.unsigned_abs())?;
        if self.exp10 >= 0 {
            numerator = numerator.checked_mul(power)?;
        } else {
            denominator = power;
        }
        Some((numerator, denominator))
    }

    /// The value rounded up to an integer, as Go's `Quantity.Value()` does ("500m" → 1).
    pub fn ceil(self) -> Option<i64> {
        let (numerator, denominator) = self.fraction()?;
        let quotient = numerator.div_euclid(denominator);
        let rounded = if numerator.rem_euclid(denominator) == 0 {
            quotient
        } else {
            quotient + 1
        };
        i64::try_from(rounded).ok()
    }

    /// The value in units of 10⁻⁹, exact for every quantity Kubernetes can store; `None` on overflow.
    pub fn nanos(self) -> Option<i128> {
        let (numerator, denominator) = self.fraction()?;
        let scaled = numerator.checked_mul(1_000_000_000)?;
        Some(scaled.div_euclid(denominator))
    }

    /// An approximate float, like Go's `Quantity.AsApproximateFloat64()`.
    pub fn as_f64(self) -> f64 {
        (self.mantissa as f64) * 2f64.powi(self.exp2 as i32) * 10f64.powi(self.exp10)
    }

    /// True for a zero amount.
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }
}

/// A float written the way Go's `encoding/json` writes a float64: integers without a fraction,
/// shortest round-trip digits, exponent form below 1e-6 and from 1e21 on (`1e-07`, `1e+21`).
pub struct GoFloat(pub f64);

impl fmt::Display for GoFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        let magnitude = value.abs();
        if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
            let text = format!("{value:e}");
            let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exponent),
            };
            write!(f, "{mantissa}e{sign}{digits:0>2}")
        } else {
            write!(f, "{value}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> ParsedQuantity {
        ParsedQuantity::parse(text).unwrap()
    }

    #[test]
    fn fractional_cpus_round_up_like_go() {
        assert_eq!(q("500m").ceil(), Some(1));
        assert_eq!(q("1").ceil(), Some(1));
        assert_eq!(q("1001m").ceil(), Some(2));
        assert_eq!(q("0.5").ceil(), Some(1));
        assert_eq!(q("48").ceil(), Some(48));
    }

    #[test]
    fn memory_suffixes_are_decimal_or_binary() {
        assert_eq!(q("2G").ceil(), Some(2_000_000_000));
        assert_eq!(q("1Gi").ceil(), Some(1 << 30));
        assert_eq!(q("1.5Gi").ceil(), Some(3 << 29));
        assert_eq!(q("512Mi").ceil(), Some(512 << 20));
        assert_eq!(q("1e3").ceil(), Some(1000));
        assert_eq!(q("20k").ceil(), Some(20_000));
    }

    #[test]
    fn two_spellings_of_one_amount_are_equal() {
        assert_eq!(q("2G").nanos(), q("2000000000").nanos());
        assert_eq!(q("0.5").nanos(), q("500m").nanos());
        assert_ne!(q("1G").nanos(), q("1Gi").nanos());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in ["", "abc", "1.2.3", "1Q", "1e", "--1", "."] {
            assert!(ParsedQuantity::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn floats_print_as_go_json_prints_them() {
        assert_eq!(GoFloat(4.0).to_string(), "4");
        assert_eq!(GoFloat(0.5).to_string(), "0.5");
        assert_eq!(GoFloat(1e21).to_string(), "1e+21");
        assert_eq!(GoFloat(1e-7).to_string(), "1e-07");
        assert_eq!(GoFloat(0.0).to_string(), "0");
    }
}
