//! Kubernetes quantities ("500m", "2G", "1.5Gi", "1e3") read, summed and printed the way Go's `resource.Quantity` does.
//!
//! One parser, [`ParsedQuantity`], for everyone. The host's pod builder needs three views of it: the
//! integer `ray start` gets (rounded up, like Go's `Quantity.Value()`), an approximate float for the
//! `--resources` JSON, and an exact value to compare two spellings of the same amount ("2G" and
//! "2000000000"). The reconciler guest sums quantities for `desiredCPU` and friends with
//! [`Quantity`], which keeps the format of its first term (Go's `Add` keeps the receiver's) and
//! prints in canonical form: `1500m`, `2`, `1k`, `1536Mi`.

use std::fmt;

/// Why a string is not a quantity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantityError(&'static str);

// By hand rather than with `thiserror`: guests link this crate and stay small.
impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for QuantityError {}

/// How a quantity prints: decimal suffixes (`m`, `k`, `M`), binary suffixes (`Ki`, `Mi`), or `e3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedQuantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
    /// The format the suffix implies, which sums and canonical text keep.
    format: Format,
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
        let (suffix_exp10, exp2, format) = match suffix {
            "" => (0, 0, Format::DecimalSi),
            "Ki" => (0, 10, Format::BinarySi),
            "Mi" => (0, 20, Format::BinarySi),
            "Gi" => (0, 30, Format::BinarySi),
            "Ti" => (0, 40, Format::BinarySi),
            "Pi" => (0, 50, Format::BinarySi),
            "Ei" => (0, 60, Format::BinarySi),
            "n" => (-9, 0, Format::DecimalSi),
            "u" => (-6, 0, Format::DecimalSi),
            "m" => (-3, 0, Format::DecimalSi),
            "k" => (3, 0, Format::DecimalSi),
            "M" => (6, 0, Format::DecimalSi),
            "G" => (9, 0, Format::DecimalSi),
            "T" => (12, 0, Format::DecimalSi),
            "P" => (15, 0, Format::DecimalSi),
            "E" => (18, 0, Format::DecimalSi),
            exponent if exponent.starts_with(['e', 'E']) => {
                let value: i32 = exponent[1..]
                    .parse()
                    .map_err(|_| QuantityError("bad exponent"))?;
                if !(-60..=60).contains(&value) {
                    return Err(QuantityError("exponent out of range"));
                }
                (value, 0, Format::DecimalExponent)
            }
            _ => return Err(QuantityError("unknown suffix")),
        };
        let fraction_len =
            i32::try_from(fraction.len()).map_err(|_| QuantityError("too many digits"))?;
        Ok(Self {
            mantissa,
            exp10: suffix_exp10 - fraction_len,
            exp2,
            format,
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
    ///
    /// Below a nano-unit the magnitude rounds up, as Go's `ParseQuantity` rounds it: asking for
    /// some of a resource never becomes asking for none.
    pub fn nanos(self) -> Option<i128> {
        let exp10 = self.exp10 + 9;
        let mut nanos = self
            .mantissa
            .unsigned_abs()
            .checked_mul(1u128.checked_shl(self.exp2)?)?;
        let power = 10u128.checked_pow(exp10.unsigned_abs())?;
        if exp10 >= 0 {
            nanos = nanos.checked_mul(power)?;
        } else {
            nanos = nanos.div_ceil(power);
        }
        let nanos = i128::try_from(nanos).ok()?;
        Some(if self.mantissa < 0 { -nanos } else { nanos })
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

/// An exact amount in nano-units with the format it prints in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity {
            nanos: 0,
            format: Format::DecimalSi,
        }
    }
}

impl Quantity {
    /// Parses the quantity grammar; `None` for anything that is not one (the API server would
    /// have rejected it, so such a value simply does not count).
    pub fn parse(text: &str) -> Option<Self> {
        let parsed = ParsedQuantity::parse(text).ok()?;
        Some(Quantity {
            nanos: parsed.nanos()?,
            format: parsed.format,
        })
    }

    /// `self × n`.
    pub fn times(self, n: i64) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_mul(i128::from(n)),
            format: self.format,
        }
    }

    /// The canonical text Go's `Quantity.String()` gives.
    pub fn canonical(self) -> String {
        const NANO: i128 = 1_000_000_000;
        let integral = self.nanos % NANO == 0;
        let units = self.nanos / NANO;
        if self.format == Format::BinarySi && integral && units.abs() >= 1024 {
            let mut value = units;
            let mut step = 0;
            while step < 6 && value % 1024 == 0 {
                value /= 1024;
                step += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][step];
            return format!("{value}{suffix}");
        }
        // Decimal: the largest power of 1000 (from 10⁻⁹ up to 10¹⁸) that leaves an integer.
        if self.nanos == 0 {
            return "0".into();
        }
        let mut value = self.nanos;
        let mut exp = -9;
        while exp < 18 && value % 1000 == 0 {
            value /= 1000;
            exp += 3;
        }
        match self.format {
            Format::DecimalExponent if exp == 0 => value.to_string(),
            Format::DecimalExponent => format!("{value}e{exp}"),
            _ => {
                let suffix = match exp {
                    -9 => "n",
                    -6 => "u",
                    -3 => "m",
                    0 => "",
                    3 => "k",
                    6 => "M",
                    9 => "G",
                    12 => "T",
                    15 => "P",
                    _ => "E",
                };
                format!("{value}{suffix}")
            }
        }
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

/// `self + other`, in `self`'s format (saturating; no Pod spec comes near the bound).
impl std::ops::Add for Quantity {
    type Output = Quantity;

    fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: self.format,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> ParsedQuantity {
        ParsedQuantity::parse(text).unwrap()
    }

    fn sum(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
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

    #[test]
    fn sums_print_canonically_in_the_first_terms_format() {
        assert_eq!((sum("500m") + sum("1")).canonical(), "1500m");
        assert_eq!((sum("500m") + sum("500m")).canonical(), "1");
        assert_eq!((sum("1") + sum("2")).canonical(), "3");
        assert_eq!((sum("1Gi") + sum("512Mi")).canonical(), "1536Mi");
        assert_eq!(sum("1Gi").times(4).canonical(), "4Gi");
        assert_eq!((sum("1G") + sum("1G")).canonical(), "2G");
        assert_eq!(sum("1000").canonical(), "1k");
        assert_eq!(sum("512").canonical(), "512");
        assert_eq!(Quantity::default().canonical(), "0");
    }

    #[test]
    fn binary_amounts_below_1024_print_as_decimals() {
        assert_eq!((sum("1Ki") + sum("-1Ki")).canonical(), "0");
        assert_eq!(Quantity::parse("100").unwrap().canonical(), "100");
    }

    #[test]
    fn garbage_is_not_a_quantity_to_sum() {
        for bad in ["", "x", "1.2.3", "1Q", "1e", "."] {
            assert!(Quantity::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn amounts_below_a_nano_unit_round_up_like_go() {
        assert_eq!(q("0.1n").nanos(), Some(1));
        assert_eq!(q("-0.1n").nanos(), Some(-1));
        assert_eq!(sum("0.1n").canonical(), "1n");
    }
}
