//! On/off environment switches of the CUDA executor (`DCP_CUDA_*=0|1`), parsed one way.

/// Switch `name`'s value `v` (surrounding spaces ignored): `1` on, `0` off, unset or empty
/// `default`; anything else is an error that names the variable and the value.
pub fn parse(name: &str, v: Option<&str>, default: bool) -> Result<bool, String> {
    match v.map(str::trim) {
        None | Some("") => Ok(default),
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(o) => Err(format!("{name}={o}: expected 0 or 1")),
    }
}

/// [`parse`] on this process's environment.
pub fn from_env(name: &str, default: bool) -> Result<bool, String> {
    parse(name, std::env::var(name).ok().as_deref(), default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_one_or_the_default_and_bad_values_are_named() {
        for d in [false, true] {
            assert_eq!(parse("X", None, d), Ok(d));
            assert_eq!(parse("X", Some(" "), d), Ok(d));
            assert_eq!(parse("X", Some(" 1"), d), Ok(true));
            assert_eq!(parse("X", Some("0 "), d), Ok(false));
        }
        assert_eq!(
            parse("DCP_CUDA_X", Some("on"), true),
            Err("DCP_CUDA_X=on: expected 0 or 1".into())
        );
    }
}
