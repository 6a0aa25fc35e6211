//! The listing's pieces: the JSON string writer, dates, sizes, the order from the query,
//! `Accept`, and the cap against a full sort.

use std::ffi::OsStr;
use std::fs;

use http::HeaderValue;
use tempfile::TempDir;

use super::*;

fn json_string(text: &str) -> String {
    let mut out = String::new();
    push_json_string(&mut out, text);
    out
}

#[test]
fn json_strings_escape_quotes_backslashes_and_control_characters() {
    assert_eq!(json_string(""), r#""""#);
    assert_eq!(json_string("plain.txt"), r#""plain.txt""#);
    assert_eq!(json_string(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(json_string("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
    assert_eq!(json_string("\0\u{1}\u{1f}"), r#""\u0000\u0001\u001f""#);
    // DEL and everything above the control characters is allowed as it is.
    assert_eq!(json_string("\u{7f}é中😀/"), "\"\u{7f}é中😀/\"");
    // Every control character, round-tripped through a real parser.
    let all: String = (0u8..0x80).map(char::from).collect();
    let parsed: String = serde_json::from_str(&json_string(&all)).unwrap();
    assert_eq!(parsed, all);
}

#[test]
fn json_names_that_are_not_utf8_are_shown_with_the_replacement_character() {
    let entry = Entry::new(b"caf\xe9 \xff\xfe\"\\\n.txt", Some(Type::File));
    let mut out = String::new();
    push_json_entry(&mut out, &entry);
    let value: serde_json::Value = serde_json::from_str(&out).expect(&out);
    assert_eq!(value["name"], "caf\u{FFFD} \u{FFFD}\u{FFFD}\"\\\n.txt");
    // The link keeps the exact bytes.
    assert_eq!(value["href"], "caf%E9%20%FF%FE%22%5C%0A.txt");
    assert_eq!(value["type"], "file");
    assert!(value["size"].is_null() && value["mtime"].is_null() && value["modified"].is_null());
}

#[test]
fn dates_are_utc_and_rfc3339() {
    let at = |secs| Utc::of(secs).map(|t| t.rfc3339());
    assert_eq!(at(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(at(1_000_000_000).as_deref(), Some("2001-09-09T01:46:40Z"));
    assert_eq!(at(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
    assert_eq!(at(951_782_400).as_deref(), Some("2000-02-29T00:00:00Z"));
    assert_eq!(at(-62_167_219_200).as_deref(), Some("0000-01-01T00:00:00Z"));
    assert_eq!(at(253_402_300_799).as_deref(), Some("9999-12-31T23:59:59Z"));
    // Beyond what RFC 3339 can write: no date, and no panic.
    for secs in [253_402_300_800, -62_167_219_201, i64::MAX, i64::MIN] {
        assert_eq!(at(secs), None, "{secs}");
    }
    assert_eq!(
        Utc::of(1_000_000_000).unwrap().readable(),
        "2001-09-09 01:46:40"
    );
}

/// Against `httpdate`'s own conversion, over every year it can write.
#[test]
fn dates_agree_with_httpdate() {
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut secs: i64 = 0;
    while secs < 253_402_300_799 {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
        let http = httpdate::fmt_http_date(time); // "Sun, 09 Sep 2001 01:46:40 GMT"
        let utc = Utc::of(secs).unwrap();
        let expected = format!(
            "{:02} {} {:04} {:02}:{:02}:{:02}",
            utc.day,
            months[utc.month as usize - 1],
            utc.year,
            utc.hour,
            utc.minute,
            utc.second
        );
        assert_eq!(&http[5..25], expected, "{secs}");
        secs += 86_400 * 97 + 3_607;
    }
}

#[test]
fn sizes_read_in_binary_units() {
    for (bytes, shown) in [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1_048_575, "1.0 MiB"),
        (5 * 1024 * 1024 * 1024, "5.0 GiB"),
        (u64::MAX, "16.0 EiB"),
    ] {
        assert_eq!(human_size(bytes), shown, "{bytes}");
    }
    for (n, shown) in [
        (0, "0"),
        (999, "999"),
        (1000, "1,000"),
        (1_234_567, "1,234,567"),
        (u64::MAX, "18,446,744,073,709,551,615"),
    ] {
        assert_eq!(grouped(n), shown);
    }
}

#[test]
fn control_characters_are_shown_as_pictures() {
    assert_eq!(printable("a\nb\tc\0\u{1f}\u{7f}"), "a␊b␉c␀␟␡");
    assert_eq!(printable("plain é"), "plain é");
}

#[test]
fn the_order_comes_from_the_query_or_is_by_name() {
    let order = |query| Order::from_query(query);
    let by = |column, descending| Order { column, descending };
    assert_eq!(order(None), by(Column::Name, false));
    assert_eq!(order(Some("sort=size&order=desc")), by(Column::Size, true));
    assert_eq!(order(Some("order=desc")), by(Column::Name, true));
    assert_eq!(order(Some("sort=DATE&order=ASC")), by(Column::Date, false));
    assert_eq!(order(Some("sort=modified")), by(Column::Date, false));
    assert_eq!(order(Some("sort=owner&order=up")), by(Column::Name, false));
    assert_eq!(order(Some("sort=size&sort=name")), by(Column::Size, false));
    assert_eq!(order(Some("sort=%73ize")), by(Column::Size, false));
    assert_eq!(
        order(Some("sort=\u{FFFD}&&=&order")),
        by(Column::Name, false)
    );
}

#[test]
fn json_is_for_clients_that_prefer_it() {
    let wants = |accept: &[&str]| {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        wants_json(&headers)
    };
    assert!(wants(&["application/json"]));
    assert!(wants(&["Application/JSON; charset=utf-8"]));
    assert!(wants(&["text/html;q=0.5, application/json"]));
    assert!(wants(&["text/html;q=0.5", "application/json;q=0.9"]));
    assert!(wants(&["application/*"]));
    assert!(wants(&["*/*;q=0.1, application/json"]));
    assert!(!wants(&[]));
    assert!(!wants(&["*/*"]));
    assert!(!wants(&["text/html"]));
    // A browser's header.
    assert!(!wants(&[
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    ]));
    // A tie goes to HTML; so does a JSON range that is refused or malformed.
    assert!(!wants(&["application/json, text/html"]));
    assert!(!wants(&["application/json;q=0"]));
    assert!(!wants(&["application/json;q=2"]));
    assert!(!wants(&["application/json;q=x"]));
    assert!(!wants(&["json"]));
    // The most specific range counts: JSON refused outright, though */* is welcome.
    assert!(!wants(&["application/json;q=0, */*"]));
}

/// A directory of `names` (plus `a-directory`), the i-th holding `i % 17` bytes and dated
/// `i % 23` seconds before the others: sizes and dates tie often.
fn tree(names: &[&[u8]]) -> (TempDir, Root) {
    let dir = TempDir::new().unwrap();
    for (i, name) in names.iter().enumerate() {
        let path = dir.path().join(OsStr::from_bytes(name));
        fs::write(&path, vec![b'x'; i % 17]).unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        let secs = 1_000_000 - (i % 23) as u64;
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }
    fs::create_dir(dir.path().join("a-directory")).unwrap();
    let root = Root::open(dir.path()).unwrap();
    (dir, root)
}

/// The names `root` lists, at most `max_entries`, in `order`.
fn list(root: &Root, max_entries: usize, order: Order) -> Vec<Vec<u8>> {
    let options = Options {
        show_hidden: false,
        max_entries,
        follow_symlinks: false,
    };
    let opened = root.open_file(Path::new(""), false).unwrap();
    let listing = read(opened, root, Path::new(""), &options, order).unwrap();
    listing.entries.into_iter().map(|e| e.name).collect()
}

/// The capped listing is the head of the full sort, in every order and for caps below,
/// at and above the size at which the buffer is cut back.
#[test]
fn a_capped_listing_is_the_head_of_the_whole_sorted_listing() {
    let owned: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("{}-{:03}", ["b", "A", "a", "B", "c"][i % 5], (i * 37) % 300).into_bytes())
        .chain([b"\xff-not-utf8".to_vec(), b".hidden".to_vec()])
        .collect();
    let names: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let (_dir, root) = tree(&names);
    let visible = names.len(); // all but .hidden, and a-directory
    for column in Column::ALL {
        for descending in [false, true] {
            let order = Order { column, descending };
            let all = list(&root, usize::MAX, order);
            assert_eq!(all.len(), visible);
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| {
                let entry = |name: &[u8]| {
                    let mut entry = Entry::new(name, None);
                    let place = Place {
                        dir: &root.open_file(Path::new(""), false).unwrap(),
                        root: &root,
                        relative: Path::new(""),
                        follow: false,
                    };
                    entry.describe(&place);
                    entry
                };
                order.compare(&entry(a), &entry(b))
            });
            assert_eq!(all, sorted, "{order:?}: the full listing is sorted");
            for cap in [0, 1, 7, 31, 32, 33, 63, 64, 65, 150, visible] {
                let head = list(&root, cap, order);
                assert_eq!(head, all[..cap.min(visible)], "{order:?}, cap {cap}");
            }
        }
    }
}

#[test]
fn names_sort_without_regard_to_case_then_by_bytes() {
    let names: [&[u8]; 6] = [b"b", b"A", b"a", b"B", b"c", b"\xff"];
    let (_dir, root) = tree(&names);
    let by_name = list(&root, 100, Order::from_query(None));
    let expected: [&[u8]; 7] = [b"A", b"a", b"a-directory", b"B", b"b", b"c", b"\xff"];
    assert_eq!(by_name, expected);
    let descending = list(&root, 100, Order::from_query(Some("order=desc")));
    assert!(descending.iter().eq(expected.iter().rev()));
    // By size: the directory (no size) first, then by size, ties by name.
    let by_size = list(&root, 100, Order::from_query(Some("sort=size")));
    let expected: [&[u8]; 7] = [b"a-directory", b"b", b"A", b"a", b"B", b"c", b"\xff"];
    assert_eq!(by_size, expected);
    // Largest first, ties still by name.
    let by_size = list(&root, 3, Order::from_query(Some("sort=size&order=desc")));
    let expected: [&[u8]; 3] = [b"\xff", b"c", b"B"];
    assert_eq!(by_size, expected);
}
