//! Kubernetes quantities summed and printed the way Go's `resource.Quantity` does, for `desiredCPU` and friends.
//!
//! A sum keeps the format of its first term (Go's `Add` keeps the receiver's), and prints in
//! canonical form: `1500m`, `2`, `1k`, `1536Mi`. Amounts are exact in units of 10⁻⁹.

/// How a quantity prints: decimal suffixes (`m`, `k`, `M`), binary suffixes (`Ki`, `Mi`), or `e3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
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
        let text = text.trim();
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 27 {
            return None;
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let (exp10, exp2, format) = match suffix {
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
            e if e.starts_with(['e', 'E']) => {
                let value: i32 = e[1..].parse().ok()?;
                (value, 0, Format::DecimalExponent)
            }
            _ => return None,
        };
        let exp10 = exp10 - i32::try_from(fraction.len()).ok()? + 9;
        let mut nanos = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
        if exp10 >= 0 {
            nanos = nanos.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?;
        } else {
            // Below a nano-unit Go rounds up, and so do we.
            let divisor = 10i128.checked_pow(exp10.unsigned_abs())?;
            nanos = (nanos + divisor - 1) / divisor;
        }
        Some(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// `self + other`, in `self`'s format (saturating; no Pod spec comes near the bound).
    pub fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: self.format,
        }
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

#[cfg(test)]
mod tests {
    use super::Quantity;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    #[test]
    fn sums_print_canonically_in_the_first_terms_format() {
        assert_eq!(q("500m").add(q("1")).canonical(), "1500m");
        assert_eq!(q("500m").add(q("500m")).canonical(), "1");
        assert_eq!(q("1").add(q("2")).canonical(), "3");
        assert_eq!(q("1Gi").add(q("512Mi")).canonical(), "1536Mi");
        assert_eq!(q("1Gi").times(4).canonical(), "4Gi");
        assert_eq!(q("1G").add(q("1G")).canonical(), "2G");
        assert_eq!(q("1000").canonical(), "1k");
        assert_eq!(q("512").canonical(), "512");
        assert_eq!(Quantity::default().canonical(), "0");
    }

    #[test]
    fn binary_amounts_below_1024_print_as_decimals() {
        assert_eq!(q("1Ki").add(q("-1Ki")).canonical(), "0");
        assert_eq!(Quantity::parse("100").unwrap().canonical(), "100");
    }

    #[test]
    fn garbage_is_not_a_quantity() {
        for bad in ["", "x", "1.2.3", "1Q", "1e", "."] {
            assert!(Quantity::parse(bad).is_none(), "{bad:?}");
        }
    }
}
