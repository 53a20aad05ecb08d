//! Percent-encoding of one URL component (RFC 3986 unreserved characters kept), for
//! the few URLs and form values the appliance writes itself: redirects with a reason,
//! `otpauth://` links, OAuth client credentials.

pub fn component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reserved_and_non_ascii_are_encoded() {
        assert_eq!(super::component("a b/c?d=é~"), "a%20b%2Fc%3Fd%3D%C3%A9~");
    }
}
