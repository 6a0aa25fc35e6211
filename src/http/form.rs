//! `application/x-www-form-urlencoded`: Python's `urllib.parse.parse_qsl`.

/// Decodes a form body or query string into its `(name, value)` pairs, in order, repeated
/// names kept: `+` is a space, `%XX` a byte, and the bytes are read as UTF-8 (invalid
/// sequences become U+FFFD). Python's `parse_qsl(data, keep_blank_values=True)`.
///
/// ```
/// use socketserver::http::parse_qsl;
///
/// let pairs = parse_qsl(b"name=Ada+Lovelace&lang=%E4%B8%AD&lang=rs&empty=");
/// assert_eq!(pairs, [
///     ("name".to_string(), "Ada Lovelace".to_string()),
///     ("lang".to_string(), "中".to_string()),
///     ("lang".to_string(), "rs".to_string()),
///     ("empty".to_string(), String::new()),
/// ]);
/// ```
pub fn parse_qsl(data: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(data)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}
