//! `SimpleHttpHandler` POST: `application/x-www-form-urlencoded` forms decoded and handed to
//! the `FormHandler` (by default `EchoForm`, an escaped HTML page of the fields), in any
//! framing; other content types 415, bodies over the limit 413.

mod files_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use files_support::{connect, curl, curl_raw, read_head, read_to_eof, serve, Served, TempDir};
use socketserver::files::{FormHandler, SimpleHttpHandler};
use socketserver::http::{Configured, HttpRequest, Limits};
use socketserver::HandlerResult;

const FORM: &str = "application/x-www-form-urlencoded";

fn echo_server(dir: &TempDir) -> Served<SimpleHttpHandler> {
    serve(SimpleHttpHandler::new(dir.path()).unwrap())
}

/// A raw HTTP/1.0 POST with `Content-Length`.
fn post(content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut request = b"POST /form HTTP/1.0\r\n".to_vec();
    if let Some(content_type) = content_type {
        request.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request
}

/// The `<tr>` rows of an EchoForm page.
fn rows(page: &str) -> Vec<String> {
    page.lines()
        .filter(|l| l.starts_with("<tr>"))
        .map(str::to_string)
        .collect()
}

#[test]
fn fields_are_decoded_and_escaped() {
    let dir = TempDir::new();
    let server = echo_server(&dir);
    let body = "name=Ada+Lovelace&pct=100%25+sure&world=%E4%B8%96%E7%95%8C\
                &lang=rust&lang=python&html=%3Cb+id%3D%22x%22%3E%26%27&empty=&novalue\
                &a%2Bb=c%3Dd&plus=1+1%2B1";
    let response = server.raw(&post(Some(FORM), body.as_bytes()));
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = response.text();
    assert!(
        page.contains("10 field(s) posted to <code>/form</code>"),
        "{page}"
    );
    assert_eq!(
        rows(&page),
        [
            "<tr><th>name</th><td>Ada Lovelace</td></tr>",
            "<tr><th>pct</th><td>100% sure</td></tr>",
            "<tr><th>world</th><td>世界</td></tr>",
            "<tr><th>lang</th><td>rust</td></tr>",
            "<tr><th>lang</th><td>python</td></tr>",
            "<tr><th>html</th><td>&lt;b id=&quot;x&quot;&gt;&amp;&#x27;</td></tr>",
            "<tr><th>empty</th><td></td></tr>",
            "<tr><th>novalue</th><td></td></tr>",
            "<tr><th>a+b</th><td>c=d</td></tr>",
            "<tr><th>plus</th><td>1 1+1</td></tr>",
        ]
    );
    assert!(!page.contains("<b id"), "{page}");
}

#[test]
fn curl_and_python_forms() {
    let dir = TempDir::new();
    let server = echo_server(&dir);
    // curl --data-urlencode encodes; the page shows the decoded text, escaped.
    let response = curl(&[
        "--data-urlencode",
        "who=<Grace & \"Ada\">",
        "--data-urlencode",
        "city=Zürich",
        &server.url("/submit?x=1"),
    ]);
    assert_eq!(response.status, 200);
    assert_eq!(
        rows(&response.text()),
        [
            "<tr><th>who</th><td>&lt;Grace &amp; &quot;Ada&quot;&gt;</td></tr>",
            "<tr><th>city</th><td>Zürich</td></tr>",
        ]
    );
    assert!(response
        .text()
        .contains("2 field(s) posted to <code>/submit?x=1</code>"));
    // Python's urlencode, with a charset parameter on the type.
    let out = files_support::python(
        "import http.client, sys, urllib.parse\n\
         body = urllib.parse.urlencode([('k', 'v 1'), ('k', '世'), ('e', '')])\n\
         c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         c.request('POST', '/', body, {'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8'})\n\
         r = c.getresponse()\n\
         print(r.status)\n\
         print(r.read().decode('utf-8'))\n",
        &[&server.port().to_string()],
    );
    assert!(out.starts_with("200\n"), "{out}");
    assert_eq!(
        rows(&out),
        [
            "<tr><th>k</th><td>v 1</td></tr>",
            "<tr><th>k</th><td>世</td></tr>",
            "<tr><th>e</th><td></td></tr>",
        ]
    );
}

#[test]
fn a_chunked_body_is_decoded() {
    let dir = TempDir::new();
    let server = echo_server(&dir);
    // A field split across chunks, a %XX escape split across chunks, a chunk extension and
    // a trailer.
    let request = "POST /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                   Content-Type: application/x-www-form-urlencoded\r\n\
                   Transfer-Encoding: chunked\r\n\r\n\
                   5\r\nfirst\r\n\
                   7;ext=1\r\n=hello+\r\n\
                   6\r\nwo%72l\r\n\
                   B\r\nd&second=%E\r\n\
                   7\r\n4%B8%96\r\n\
                   0\r\nX-Trailer: 1\r\n\r\n";
    let response = server.raw(request.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        rows(&response.text()),
        [
            "<tr><th>first</th><td>hello world</td></tr>",
            "<tr><th>second</th><td>世</td></tr>",
        ]
    );
    // curl sends chunked when told to.
    let response = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "a=1&b=2",
        &server.url("/"),
    ]);
    assert_eq!(response.status, 200);
    assert_eq!(rows(&response.text()).len(), 2);
}

#[test]
fn expect_100_continue() {
    let dir = TempDir::new();
    let server = echo_server(&dir);
    // Raw: the server answers 100 before the body is sent, then the form.
    let mut stream = connect(server.addr);
    stream
        .write_all(
            b"POST /e HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 11\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let mut buf = Vec::new();
    let end = read_head(&mut stream, &mut buf);
    assert_eq!(&buf[..end], b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"q=waited+ok").unwrap();
    buf.drain(..end);
    buf.extend(read_to_eof(&mut stream));
    let response = files_support::parse(&buf, false).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        rows(&response.text()),
        ["<tr><th>q</th><td>waited ok</td></tr>"]
    );
    // curl: it waits for the 100 (shown with -i) before it sends.
    let (raw, response) = curl_raw(&[
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "10",
        "--data-binary",
        "via=curl",
        &server.url("/"),
    ]);
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 100 Continue\r\n"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        rows(&response.text()),
        ["<tr><th>via</th><td>curl</td></tr>"]
    );
}

#[test]
fn other_content_types_are_415() {
    let dir = TempDir::new();
    let server = echo_server(&dir);
    for content_type in [
        Some("text/plain"),
        Some("multipart/form-data; boundary=xyz"),
        Some("application/json"),
        Some("application/x-www-form-urlencodedx"),
        Some(""),
        None,
    ] {
        let response = server.raw(&post(content_type, b"a=1"));
        assert_eq!(response.status, 415, "{content_type:?}");
        assert!(!response.text().contains("<td>1</td>"), "{content_type:?}");
    }
    // The media type is case-insensitive and may carry parameters.
    for content_type in [
        "Application/X-WWW-Form-URLEncoded",
        "application/x-www-form-urlencoded ; charset=utf-8",
    ] {
        let response = server.raw(&post(Some(content_type), b"a=1"));
        assert_eq!(response.status, 200, "{content_type}");
    }
    // curl's multipart form (-F) is refused too.
    let response = curl(&["-F", "a=1", &server.url("/")]);
    assert_eq!(response.status, 415);
    // An empty form is a form.
    let response = server.raw(&post(Some(FORM), b""));
    assert_eq!(response.status, 200);
    assert!(response.text().contains("0 field(s)"));
}

/// A form handler that records what it gets.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Fields>>>);

/// The decoded pairs of one form.
type Fields = Vec<(String, String)>;

impl FormHandler for Recorder {
    fn handle_form(
        &mut self,
        request: &mut HttpRequest<'_>,
        fields: Vec<(String, String)>,
    ) -> HandlerResult {
        let body = format!("got {} for {}", fields.len(), request.path);
        self.0.lock().unwrap().push(fields);
        request.send_response(201)?;
        request.send_header("Content-Type", "text/plain")?;
        request.send_header("Content-Length", body.len())?;
        request.end_headers()?;
        request.wfile.write_all(body.as_bytes())?;
        Ok(())
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_custom_form_handler_receives_the_decoded_pairs() {
    let dir = TempDir::new();
    let recorder = Recorder::default();
    let server = serve(
        SimpleHttpHandler::new(dir.path())
            .unwrap()
            .form_handler(recorder.clone()),
    );
    let response = server.raw(&post(
        Some(FORM),
        b"x=1+2&y=%E4%B8%96&x=3&z=%3Cp%3E&bad=%ZZ",
    ));
    assert_eq!(response.status, 201);
    assert_eq!(response.text(), "got 5 for /form");
    let response = curl(&["--data-binary", "only=one", &server.url("/other")]);
    assert_eq!(response.text(), "got 1 for /other");
    // Refused content types never reach it.
    assert_eq!(server.raw(&post(Some("text/plain"), b"t=1")).status, 415);
    let calls = recorder.0.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            pairs(&[
                ("x", "1 2"),
                ("y", "世"),
                ("x", "3"),
                ("z", "<p>"),
                ("bad", "%ZZ")
            ]),
            pairs(&[("only", "one")]),
        ]
    );
    // GET still serves files with a custom form handler.
    dir.write("f.txt", "file");
    assert_eq!(server.get("/f.txt").text(), "file");
}

#[test]
fn bodies_over_the_limit_are_413() {
    let dir = TempDir::new();
    let recorder = Recorder::default();
    let files = SimpleHttpHandler::new(dir.path())
        .unwrap()
        .form_handler(recorder.clone());
    let server = serve(Configured::new(files).limits(Limits {
        max_body_size: 64,
        ..Limits::default()
    }));
    // At the limit: accepted.
    let at_limit = format!("a={}", "x".repeat(62));
    assert_eq!(
        server.raw(&post(Some(FORM), at_limit.as_bytes())).status,
        201
    );
    // Content-Length over the limit.
    let over = format!("a={}", "x".repeat(63));
    let response = server.raw(&post(Some(FORM), over.as_bytes()));
    assert_eq!(response.status, 413);
    // Chunked, growing past the limit.
    let chunk = "x".repeat(40);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {FORM}\r\n\
         Transfer-Encoding: chunked\r\n\r\n28\r\n{chunk}\r\n28\r\n{chunk}\r\n0\r\n\r\n"
    );
    let response = server.raw(request.as_bytes());
    assert_eq!(response.status, 413);
    // Through curl.
    let big = format!("a={}", "y".repeat(1000));
    let response = curl(&["--data-binary", &big, &server.url("/")]);
    assert_eq!(response.status, 413);
    assert_eq!(
        recorder.0.lock().unwrap().len(),
        1,
        "only the form at the limit reached the handler"
    );
}

#[test]
fn a_post_without_a_body_or_a_type_is_an_empty_form() {
    let dir = TempDir::new();
    let server = serve(SimpleHttpHandler::new(dir.path()).unwrap());
    // `curl -X POST URL` sends neither a body nor a Content-Type (with Content-Length: 0
    // or no length at all).
    for request in [
        &b"POST /form HTTP/1.0\r\nContent-Length: 0\r\n\r\n"[..],
        &b"POST /form HTTP/1.0\r\n\r\n"[..],
    ] {
        let response = server.raw(request);
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(
            response.text().contains("0 field(s) posted"),
            "{}",
            response.text()
        );
    }
    // A body without a type is still no form.
    assert_eq!(server.raw(&post(None, b"a=1")).status, 415);
}
