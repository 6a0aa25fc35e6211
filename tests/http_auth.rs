//! `BasicAuth`, HTTP Basic authentication in front of another handler, with real clients:
//! curl's `-u`, Python's `http.client` with a header of its own, raw sockets for what no
//! client sends. Right passwords of every kind (as given, `sha256:`, bcrypt from htpasswd)
//! reach the inner handler with the request as it came; everything else gets one and the
//! same 401, which keeps the connection open; `writes_only` lets reads through.

mod files_support;

use std::fmt::Write as _;
use std::io::Write as _;

use files_support::{
    connect, curl, find, python, read_head, serve, KeepAlive, Response, Served, TempDir,
};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{BasicAuth, HttpHandler, HttpRequest, Version};
use socketserver::HandlerResult;

const REALM: &str = "Uploads \"2026\"";
const CHALLENGE: &str = "Basic realm=\"Uploads \\\"2026\\\"\", charset=\"UTF-8\"";

/// `htpasswd -nbB bob 'his password'` (cost 5, htpasswd's default), without `bob:`.
const BOB_BCRYPT: &str = "$2y$05$z17ASYIe./KgIlfkHCna1uhV4X.vacF5iLM3escHrHMrFHXVbExH2";
/// `htpasswd -nbB -C 4 carol 'pässwörd: with colon'`.
const CAROL_BCRYPT: &str = "$2y$04$SDbIJUWJY7K3z5OsNKAv4Oope3iukoXGvO2sjgOpmvqwsGtsLsrVm";
/// `printf %s erin-pass | sha256sum`.
const ERIN_SHA256: &str = "sha256:4a7eda89c301c544696a362d00f27ea45eb8a7992f6a36c68c0d6ac83cc3faac";

/// Answers every request, whatever its method, with what it received: the request line's
/// method and target, the user it was authenticated as, each header, a blank line and the
/// body. `HEAD` gets the same head without the body.
#[derive(Clone, Debug)]
struct Recorder;

impl HttpHandler for Recorder {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn may_block(&self, _request: &HttpRequest<'_>) -> bool {
        files_support::strategy::requests_on_workers()
    }

    fn fallback(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        let user = request.remote_user().unwrap_or("-");
        let mut text = format!("{} {}\nuser: {user}\n", request.command, request.path);
        for (name, value) in request.headers.iter() {
            let value = String::from_utf8_lossy(value.as_bytes());
            let _ = writeln!(text, "{name}: {value}");
        }
        text.push('\n');
        let mut body = text.into_bytes();
        body.extend(request.read_body()?);
        request.respond(200, "text/plain", body)
    }
}

/// Alice and Jöhn with passwords as they are, Bob and Carol with bcrypt hashes, Erin with a
/// SHA-256 one.
fn guarded<H: HttpHandler>(inner: H) -> BasicAuth<H> {
    BasicAuth::new(inner, REALM)
        .user("alice", "wonder land")
        .unwrap()
        .user("jöhn", "pässwörd:€")
        .unwrap()
        .user_hashed("bob", BOB_BCRYPT)
        .unwrap()
        .user_hashed("carol", CAROL_BCRYPT)
        .unwrap()
        .user_hashed("erin", ERIN_SHA256)
        .unwrap()
}

fn recorder() -> Served<BasicAuth<Recorder>> {
    serve(guarded(Recorder))
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `Authorization: Basic base64(user:password)`.
fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(&format!("{user}:{password}")))
}

/// `method target HTTP/1.0` with `headers` (each a whole line) and `body`: one request on a
/// connection of its own.
fn request_bytes(method: &str, target: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut request = format!("{method} {target} HTTP/1.0\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    if !body.is_empty() {
        let _ = write!(request, "Content-Length: {}\r\n", body.len());
    }
    request.push_str("\r\n");
    request.push_str(body);
    request.into_bytes()
}

/// The recorded request's user line, or `None` if the response is no recording.
fn recorded_user(response: &Response) -> Option<String> {
    response
        .text()
        .lines()
        .nth(1)
        .and_then(|line| line.strip_prefix("user: "))
        .map(str::to_string)
}

/// Checks `response` is the challenge: 401, the `WWW-Authenticate` header, an error page
/// with its length (none sent for `HEAD`).
fn assert_challenge(response: &Response, head: bool) {
    assert_eq!(response.status, 401, "{response:#?}");
    assert_eq!(response.header("www-authenticate"), Some(CHALLENGE));
    let length: usize = response
        .header("content-length")
        .expect("a Content-Length on the 401")
        .parse()
        .unwrap();
    if head {
        assert!(response.body.is_empty());
        assert!(length > 0);
    } else {
        assert_eq!(response.body.len(), length);
        assert!(response.text().contains("401"), "{}", response.text());
    }
    assert_eq!(recorded_user(response), None, "the inner handler answered");
}

#[test]
fn curl_with_a_right_password_reaches_the_inner_handler() {
    let server = recorder();
    for (user, password) in [
        ("alice", "wonder land"),
        ("jöhn", "pässwörd:€"),
        ("bob", "his password"),
        ("carol", "pässwörd: with colon"),
        ("erin", "erin-pass"),
    ] {
        let credentials = format!("{user}:{password}");
        let response = curl(&["-u", &credentials, &server.url("/notes?x=1")]);
        assert_eq!(response.status, 200, "{user}: {}", response.text());
        assert_eq!(recorded_user(&response).as_deref(), Some(user));
        let sent = format!("authorization: {}", basic(user, password));
        assert!(response.text().contains(&sent), "{}", response.text());
    }
}

#[test]
fn curl_without_a_right_password_gets_the_challenge() {
    let server = recorder();
    let url = server.url("/notes");
    assert_challenge(&curl(&[&url]), false);
    for credentials in [
        "alice:wonder lan",
        "alice:wonder land ",
        "Alice:wonder land",
        "alice:",
        "mallory:wonder land",
        "bob:his password!",
        "bob:wonder land",
        "carol:pässwörd: with colon ",
        "erin:",
        "erin:4a7eda89c301c544696a362d00f27ea45eb8a7992f6a36c68c0d6ac83cc3faac",
        ":",
    ] {
        assert_challenge(&curl(&["-u", credentials, &url]), false);
    }
}

#[test]
fn every_refusal_gets_the_same_answer() {
    let server = recorder();
    let refusal = |headers: &[&str]| {
        let response = server.raw(&request_bytes("GET", "/", headers, ""));
        assert_challenge(&response, false);
        (response.status, response.stable_headers(), response.body)
    };
    let expected = refusal(&[]);
    let wrong = format!("Authorization: {}", basic("alice", "wrong"));
    let unknown = format!("Authorization: {}", basic("mallory", "wonder land"));
    let bcrypt_wrong = format!("Authorization: {}", basic("bob", "wrong"));
    let right = format!("Authorization: {}", basic("alice", "wonder land"));
    let cases: [&[&str]; 7] = [
        &[&wrong],
        &[&unknown],
        &[&bcrypt_wrong],
        &["Authorization: Bearer abc"],
        &["Authorization: Basic !!!"],
        &["Authorization:"],
        // Two headers, even both right: which would count?
        &[&right, &right],
    ];
    for headers in cases {
        assert_eq!(refusal(headers), expected, "{headers:?}");
    }
}

#[test]
fn python_http_client_with_a_header_of_its_own_keeps_its_connection_after_a_401() {
    let server = recorder();
    let out = python(
        "import base64, http.client, sys\n\
         c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         c.request('GET', '/py')\n\
         r = c.getresponse()\n\
         body = r.read()\n\
         port = c.sock.getsockname()[1]\n\
         print(r.status, len(body) == int(r.getheader('Content-Length')))\n\
         print(r.getheader('WWW-Authenticate'))\n\
         token = base64.b64encode('jöhn:pässwörd:€'.encode()).decode()\n\
         c.request('PUT', '/py/upload', body=b'payload bytes',\n\
                   headers={'Authorization': 'basic  ' + token, 'X-Extra': 'kept'})\n\
         r = c.getresponse()\n\
         body = r.read().decode()\n\
         print(r.status, c.sock.getsockname()[1] == port)\n\
         print(body)\n",
        &[&server.port().to_string()],
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("401 True"), "{out}");
    assert_eq!(lines.next(), Some(CHALLENGE), "{out}");
    assert_eq!(lines.next(), Some("200 True"), "{out}");
    assert_eq!(lines.next(), Some("PUT /py/upload"), "{out}");
    assert_eq!(lines.next(), Some("user: jöhn"), "{out}");
    assert!(out.contains("\nx-extra: kept\n"), "{out}");
    assert!(out.ends_with("\n\npayload bytes\n"), "{out}");
}

#[test]
fn hostile_authorization_headers_are_refused_and_the_server_keeps_serving() {
    let server = recorder();
    let long_password = "p".repeat(40_000);
    let long = format!("Authorization: {}", basic("alice", &long_password));
    let junk = format!("Authorization: Basic {}", "A".repeat(50_000));
    let values = [
        "Authorization: Basic YWxpY2U6d29uZGVyIGxhbmQ".to_string(), // alice's, unpadded
        "Authorization: Basic YWxpY2U6d29uZGVyIGxhbmR=".to_string(), // stray bits
        "Authorization: Basic YWxpY2U6d29uZGVy IGxhbmQ=".to_string(),
        "Authorization: Basic\tYWxpY2U6d29uZGVyIGxhbmQ=".to_string(),
        "Authorization: BasicYWxpY2U6d29uZGVyIGxhbmQ=".to_string(),
        "Authorization: Basic YWxpY2U6d29uZGVyIGxhbmQ=, Basic YWxpY2U6d29uZGVyIGxhbmQ=".to_string(),
        format!("Authorization: Basic {}", base64("alice")),
        format!("Authorization: Basic {}", base64("alice\0:wonder land")),
        format!("Authorization: Basic {}", base64("alice:wonder land\x1b")),
        "Authorization: Basic /9o6d29uZGVyIGxhbmQ=".to_string(), // "\xff\xda:wonder land"
        "Authorization: Basic \u{e9}\u{e9}\u{e9}\u{e9}".to_string(),
        "Authorization: Digest username=\"alice\"".to_string(),
        long,
        junk,
    ];
    for header in &values {
        let response = server.raw(&request_bytes("GET", "/", &[header], ""));
        assert_challenge(&response, false);
    }
    // Over the server's limit on the head: 431 from the server, before any handler.
    let huge = format!("Authorization: Basic {}", "A".repeat(70_000));
    let response = server.raw(&request_bytes("GET", "/", &[&huge], ""));
    assert_eq!(response.status, 431);
    let right = format!("Authorization: {}", basic("alice", "wonder land"));
    let response = server.raw(&request_bytes("GET", "/after", &[&right], ""));
    assert_eq!(recorded_user(&response).as_deref(), Some("alice"));
}

#[test]
fn the_inner_handler_gets_the_request_as_it_came() {
    let server = recorder();
    let authorization = format!("Authorization: {}", basic("erin", "erin-pass"));
    let headers = [
        authorization.as_str(),
        "X-Custom: one",
        "X-Custom: two",
        "Content-Type: application/octet-stream",
    ];
    let body = "line one\r\nline two\0 and more";
    let request = request_bytes("POST", "/a%20b/c?q=1&r=%2F", &headers, body);
    let response = server.raw(&request);
    assert_eq!(response.status, 200);
    let text = response.text();
    let (head, recorded_body) = text.split_once("\n\n").expect("a recording");
    assert_eq!(recorded_body, body);
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("POST /a%20b/c?q=1&r=%2F"));
    assert_eq!(lines.next(), Some("user: erin"));
    let mut recorded: Vec<&str> = lines.collect();
    recorded.sort_unstable();
    let authorization = format!("authorization: {}", basic("erin", "erin-pass"));
    let length = format!("content-length: {}", body.len());
    let mut expected = vec![
        authorization.as_str(),
        "x-custom: one",
        "x-custom: two",
        "content-type: application/octet-stream",
        length.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(recorded, expected);
}

#[test]
fn every_method_passes_the_check() {
    let server = recorder();
    let right = format!("Authorization: {}", basic("carol", "pässwörd: with colon"));
    for method in [
        "GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "PROPFIND", "MKCOL",
    ] {
        let refused = server.raw(&request_bytes(method, "/m", &[], ""));
        assert_challenge(&refused, false);
        let answered = server.raw(&request_bytes(method, "/m", &[&right], ""));
        assert_eq!(answered.status, 200, "{method}");
        assert!(
            answered
                .text()
                .starts_with(&format!("{method} /m\nuser: carol\n")),
            "{method}: {}",
            answered.text()
        );
    }
}

#[test]
fn head_gets_the_challenge_without_a_body() {
    let server = recorder();
    let refused = server.raw(&request_bytes("HEAD", "/h", &[], ""));
    assert_challenge(&refused, true);
    let got = server.raw(&request_bytes("GET", "/h", &[], ""));
    assert_eq!(refused.stable_headers(), got.stable_headers());
    let refused = curl(&["-I", &server.url("/h")]);
    assert_challenge(&refused, true);
    let right = format!("Authorization: {}", basic("alice", "wonder land"));
    let answered = server.raw(&request_bytes("HEAD", "/h", &[&right], ""));
    assert_eq!(answered.status, 200);
    assert!(answered.body.is_empty());
}

#[test]
fn the_connection_stays_open_after_a_401() {
    let server = recorder();
    let mut client = KeepAlive::connect(server.addr);
    let right = basic("bob", "his password");
    let refused = client.request("GET /one HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_challenge(&refused, false);
    assert_eq!(refused.header("connection"), None);
    // A refused body is read past, and the next request on the connection is answered.
    let refused = client.request(
        "POST /two HTTP/1.1\r\nHost: a\r\nAuthorization: Basic bm9ib2R5Og==\r\n\
         Content-Length: 11\r\n\r\nhello world",
    );
    assert_challenge(&refused, false);
    let refused = client.request("HEAD /three HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_challenge(&refused, true);
    for target in ["/four", "/five", "/six"] {
        let answered = client.request(&format!(
            "PUT {target} HTTP/1.1\r\nHost: a\r\nAuthorization: {right}\r\n\
             Content-Length: 4\r\n\r\nbody"
        ));
        assert_eq!(recorded_user(&answered).as_deref(), Some("bob"));
        assert!(answered.text().starts_with(&format!("PUT {target}\n")));
        assert!(answered.text().ends_with("\n\nbody"));
    }
    let refused = client.request(&format!(
        "GET /seven HTTP/1.1\r\nHost: a\r\nAuthorization: {}\r\n\r\n",
        basic("bob", "not his")
    ));
    assert_challenge(&refused, false);
    let answered = client.request(&format!(
        "GET /eight HTTP/1.1\r\nHost: a\r\nAuthorization: {right}\r\n\r\n"
    ));
    assert_eq!(recorded_user(&answered).as_deref(), Some("bob"));
}

#[test]
fn writes_only_lets_reads_through_and_checks_the_rest() {
    let server = serve(guarded(Recorder).writes_only(true));
    let right = format!("Authorization: {}", basic("alice", "wonder land"));
    for method in ["GET", "HEAD", "OPTIONS"] {
        let response = server.raw(&request_bytes(method, "/r", &[], ""));
        assert_eq!(response.status, 200, "{method}");
        // Unchecked, even with credentials: no user in the log.
        let wrong = format!("Authorization: {}", basic("alice", "wrong"));
        let response = server.raw(&request_bytes(method, "/r", &[&wrong], ""));
        assert_eq!(response.status, 200, "{method}");
        if method != "HEAD" {
            assert_eq!(recorded_user(&response).as_deref(), Some("-"));
        }
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "MKCOL"] {
        let refused = server.raw(&request_bytes(method, "/w", &[], "data"));
        assert_challenge(&refused, false);
        let answered = server.raw(&request_bytes(method, "/w", &[&right], "data"));
        assert_eq!(
            recorded_user(&answered).as_deref(),
            Some("alice"),
            "{method}"
        );
    }
}

#[test]
fn curl_uploads_need_the_password_when_writes_only() {
    let server = serve(guarded(Recorder).writes_only(true));
    let dir = TempDir::new();
    let file = dir.write("upload.txt", "the uploaded bytes\n");
    let file = file.to_str().unwrap();
    let url = server.url("/incoming/upload.txt");
    let response = curl(&[&url]);
    assert_eq!(recorded_user(&response).as_deref(), Some("-"));
    let refused = curl(&["-T", file, &url]);
    assert_challenge(&refused, false);
    let refused = curl(&["-T", file, "-H", "Expect: 100-continue", &url]);
    assert_challenge(&refused, false);
    for user in ["alice:wonder land", "bob:his password"] {
        let stored = curl(&["-T", file, "-H", "Expect: 100-continue", "-u", user, &url]);
        assert_eq!(stored.status, 200, "{user}");
        assert!(stored.text().starts_with("PUT /incoming/upload.txt\n"));
        assert!(stored.text().ends_with("\n\nthe uploaded bytes\n"));
    }
}

/// Sends the head of a PUT that waits for `100 Continue`; returns the connection and the
/// first response head the server sends.
fn put_expecting(
    server: &Served<BasicAuth<Recorder>>,
    authorization: &str,
) -> (std::net::TcpStream, Vec<u8>) {
    let mut stream = connect(server.addr);
    let head = format!(
        "PUT /big HTTP/1.1\r\nHost: a\r\n{authorization}Expect: 100-continue\r\n\
         Content-Length: 10\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let end = read_head(&mut stream, &mut buf);
    buf.truncate(end);
    (stream, buf)
}

/// Sends the body `put_expecting` announced; returns the status line of the answer.
fn send_body(stream: &mut std::net::TcpStream) -> String {
    stream.write_all(b"0123456789").unwrap();
    let mut buf = Vec::new();
    let end = read_head(stream, &mut buf);
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    head.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_body_the_credentials_do_not_allow_is_refused_before_it_is_sent() {
    let plain_only = serve(
        BasicAuth::new(Recorder, REALM)
            .user("alice", "wonder land")
            .unwrap(),
    );
    let wrong = format!("Authorization: {}\r\n", basic("alice", "wrong"));
    for server in [&recorder(), &plain_only] {
        for authorization in [
            "",
            "Authorization: Bearer x\r\n",
            "Authorization: Basic !\r\n",
        ] {
            let (_stream, head) = put_expecting(server, authorization);
            let head = String::from_utf8_lossy(&head).into_owned();
            assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
            assert!(head.contains(CHALLENGE), "{head}");
        }
    }
    // Without bcrypt users, a wrong password is refused before the body too.
    let (_stream, head) = put_expecting(&plain_only, &wrong);
    assert!(head.starts_with(b"HTTP/1.1 401 "));
    let right = format!("Authorization: {}\r\n", basic("alice", "wonder land"));
    let (mut stream, head) = put_expecting(&plain_only, &right);
    assert!(head.starts_with(b"HTTP/1.1 100 Continue\r\n"));
    assert_eq!(send_body(&mut stream), "HTTP/1.1 200 OK");
    // With them, every check runs bcrypt (whoever is named): an event loop reads the body
    // first and checks on a worker; a thread checks before it asks for the body.
    let server = recorder();
    for (user, password, refused) in [
        ("bob", "his password", false),
        ("bob", "wrong", true),
        ("alice", "wonder land", false),
        ("alice", "wrong", true),
    ] {
        let authorization = format!("Authorization: {}\r\n", basic(user, password));
        let (mut stream, head) = put_expecting(&server, &authorization);
        let head = String::from_utf8_lossy(&head).into_owned();
        if refused && !files_support::flavor().reads_ahead() {
            assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
            continue;
        }
        assert!(head.starts_with("HTTP/1.1 100 Continue\r\n"), "{head}");
        let status = if refused {
            "401 Unauthorized"
        } else {
            "200 OK"
        };
        assert_eq!(send_body(&mut stream), format!("HTTP/1.1 {status}"));
    }
}

#[test]
fn serves_a_directory_behind_the_login() {
    let dir = TempDir::new();
    dir.write("notes.txt", "private notes\n");
    dir.write("index.html", "<p>index</p>\n");
    let files = SimpleHttpHandler::new(dir.path()).unwrap();
    let server = serve(guarded(files));
    let url = server.url("/notes.txt");
    let refused = curl(&[&url]);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some(CHALLENGE));
    assert!(find(&refused.body, b"private").is_none());
    let got = curl(&["-u", "erin:erin-pass", &url]);
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "private notes\n");
    let head = curl(&["-I", "-u", "bob:his password", &url]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("14"));
    let listing = curl(&["-u", "alice:wonder land", &server.url("/")]);
    assert_eq!(listing.text(), "<p>index</p>\n");
    // Reads for everyone, the form handler's POST for users only.
    let server = serve(guarded(SimpleHttpHandler::new(dir.path()).unwrap()).writes_only(true));
    assert_eq!(curl(&[&server.url("/notes.txt")]).text(), "private notes\n");
    let form = ["-d", "a=1", &server.url("/form")];
    assert_eq!(curl(&form).status, 401);
    let posted = curl(&["-u", "alice:wonder land", form[0], form[1], form[2]]);
    assert_eq!(posted.status, 200);
    assert!(posted.text().contains("posted"), "{}", posted.text());
}

#[test]
fn users_no_client_could_send_are_refused_at_setup() {
    let auth = BasicAuth::new(Recorder, "r");
    assert!(auth.clone().user("a:b", "pw").is_err());
    assert!(auth.clone().user("a", "pw\n").is_err());
    assert!(auth.clone().user_hashed("a", "plain-secret").is_err());
    assert!(auth.clone().user_hashed("a", &BOB_BCRYPT[..50]).is_err());
    let err = auth.user_hashed("a", "sha256:00-secret").unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}
