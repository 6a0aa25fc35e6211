//! Fault injection: every case hurts a running server in one way (a client that hangs up,
//! resets, stalls, trickles or half-closes; a file that changes under a download; a CGI
//! script that escapes, hangs or dies; a closed server; too many workers; no descriptors
//! left; a directory removed under a listing), then checks the server is healthy again:
//!
//! 1. it idles: the process's CPU time (utime + stime, `/proc/self/stat`) grows by less than
//!    20 % of a 500 ms window (a few windows are allowed for cleanup still under way);
//! 2. it holds the descriptors it held before the fault (`/proc/self/fd`, waited for with a
//!    bounded poll);
//! 3. it answers the next request: a GET of a small file gets 200 and the file.
//!
//! At the end the server is shut down and closed, and the process must hold the descriptors
//! it held before the server existed.
//!
//! Each case is one function of the strategy, run on `EventLoop::new(0)` (every handler on
//! the loop's thread), `EventLoop::new(4)`, `Threading` (daemon threads) and
//! `ThreadPool::new(4, 16)`: the test `case::strategy` names both. CPU time and descriptor
//! counts belong to the whole process, so every test takes one lock and this binary holds
//! nothing else. Limits are short (1 s timeouts) so that the suite is quick; sleeps only pace
//! slow clients, every wait is a bounded poll, every client socket has a timeout.

#[macro_use]
mod faults_support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use faults_support::*;
use socket2::{Domain, Socket, Type};
use socketserver::http::{Limits, Version};

on_every_strategy!(
    hang_up_mid_download_http10_close,
    hang_up_mid_download_http10_reset,
    hang_up_mid_download_http11_close,
    hang_up_mid_download_http11_reset,
    file_truncated_mid_send,
    file_deleted_mid_send,
    file_replaced_mid_send,
    file_grown_mid_send,
    slow_steady_reader_gets_whole_file,
    stalled_reader_is_cut_off,
    large_answer_to_a_stalled_reader_does_not_block,
    slow_cgi_uploads_do_not_block_static_files,
    slow_bodies_and_heads_do_not_delay_get,
    cgi_background_child_does_not_hold_request,
    cgi_silent_script_gets_504,
    cgi_killed_mid_output_is_visibly_incomplete,
    cgi_killed_short_of_its_content_length,
    cgi_large_upload_is_not_held_in_memory,
    server_close_refuses_new_connections,
    server_close_during_download_refuses_new_connections,
    reset_during_head,
    reset_during_body,
    reset_before_reading_response,
    reset_during_sendfile,
    reset_during_cgi_output,
    half_closed_client_http10,
    half_closed_client_http11,
    emfile_at_accept,
    directory_removed_under_listing,
);

const SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// 1. Hang-up mid-download

#[derive(Clone, Copy, Debug)]
enum HangUp {
    Close,
    Reset,
}

fn hang_up_mid_download_http10_close(strategy: Strategy) {
    hang_up_mid_download(strategy, Version::HTTP_10, HangUp::Close);
}

fn hang_up_mid_download_http10_reset(strategy: Strategy) {
    hang_up_mid_download(strategy, Version::HTTP_10, HangUp::Reset);
}

fn hang_up_mid_download_http11_close(strategy: Strategy) {
    hang_up_mid_download(strategy, Version::HTTP_11, HangUp::Close);
}

fn hang_up_mid_download_http11_reset(strategy: Strategy) {
    hang_up_mid_download(strategy, Version::HTTP_11, HangUp::Reset);
}

/// The client takes 64 KiB of a 32 MiB file and goes: the rest of the `sendfile` has
/// nowhere to go, and must be dropped, not retried.
fn hang_up_mid_download(strategy: Strategy, version: Version, hang_up: HangUp) {
    let site = Site::new();
    let big = site.big("big.bin", 32 * MIB, 1);
    let rig = Rig::start(strategy, || site.files(short_limits(), version));
    let mut conn = Conn::open(rig.addr);
    conn.send(&get_request(version, "/big.bin")).unwrap();
    expect_download_head(&mut conn, 200, big.len());
    expect_prefix(&mut conn, &big, 64 * KIB);
    match hang_up {
        HangUp::Close => conn.close(),
        HangUp::Reset => conn.reset(),
    }
    rig.assert_healthy(&format!(
        "a {version:?} client's {hang_up:?} 64 KiB into a 32 MiB download"
    ));
    rig.finish();
}

/// Reads a response head: `status`, with a `Content-Length` of `len`.
fn expect_download_head(conn: &mut Conn, status: u16, len: usize) -> Head {
    let head = conn
        .head()
        .unwrap_or_else(|e| panic!("the download's head: {e}"));
    assert_eq!(head.status, status, "{}", head.text);
    assert_eq!(
        head.content_length(),
        Some(len as u64),
        "Content-Length of the download: {}",
        head.text
    );
    head
}

/// Reads the first `len` bytes of a body that must match `expected`.
fn expect_prefix(conn: &mut Conn, expected: &[u8], len: usize) {
    let (got, end) = conn.body_against(expected, len);
    if let Some(end) = end {
        panic!("the download ended ({end:?}) after {got} bytes, before the first {len}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. The file changes while it is sent

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// Cut to 1 MiB: the promised length cannot be kept.
    Truncated,
    /// Unlinked: the open file still serves.
    Deleted,
    /// Another file renamed over it: the open file (the old contents) still serves.
    Replaced,
    /// 1 MiB appended: exactly the promised length is sent.
    Grown,
}

fn file_truncated_mid_send(strategy: Strategy) {
    file_changed_mid_send(strategy, Change::Truncated);
}

fn file_deleted_mid_send(strategy: Strategy) {
    file_changed_mid_send(strategy, Change::Deleted);
}

fn file_replaced_mid_send(strategy: Strategy) {
    file_changed_mid_send(strategy, Change::Replaced);
}

fn file_grown_mid_send(strategy: Strategy) {
    file_changed_mid_send(strategy, Change::Grown);
}

fn file_changed_mid_send(strategy: Strategy, change: Change) {
    let site = Site::new();
    let big = site.big("big.bin", 32 * MIB, 2);
    let path = site.path("big.bin");
    let rig = Rig::start(strategy, || site.files(short_limits(), Version::HTTP_11));
    // A small receive window: the server is far from done (at most its send buffer, a few
    // MiB, is ahead) when the file changes.
    let mut conn = Conn::open_slow(rig.addr);
    conn.send(&get_request(Version::HTTP_11, "/big.bin"))
        .unwrap();
    expect_download_head(&mut conn, 200, big.len());
    expect_prefix(&mut conn, &big, 64 * KIB);
    match change {
        Change::Truncated => fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(MIB as u64))
            .expect("truncate the file"),
        Change::Deleted => fs::remove_file(&path).expect("delete the file"),
        Change::Replaced => {
            site.big("other.bin", big.len(), 3);
            fs::rename(site.path("other.bin"), &path).expect("rename over the file");
        }
        Change::Grown => fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&pattern(MIB, 4)))
            .expect("append to the file"),
    }
    let rest = big.len() - 64 * KIB;
    let started = Instant::now();
    let cpu = rig.cpu.now();
    if change == Change::Truncated {
        // The client must learn that the body will not be whole: the connection ends.
        // Only the bytes below the cut are compared: `sendfile` hands page-cache pages to
        // the socket, and those of the cut-off part may leave as zeros (the kernel's doing).
        conn.set_read_timeout(5 * SECOND);
        let (got, end) = conn.body_against(&big[64 * KIB..MIB], rest);
        let took = started.elapsed();
        match end {
            Some(end) if end.is_close() => {}
            Some(end) => panic!(
                "after the file was cut to 1 MiB mid-send, the client got {} of {} bytes and \
                 then {end:?} for {} ms (CPU meanwhile {} ms): neither the rest nor the end of \
                 the connection came",
                64 * KIB + got,
                big.len(),
                took.as_millis(),
                rig.cpu.now().saturating_sub(cpu).as_millis()
            ),
            None => panic!(
                "the client got all {} bytes of a file cut to 1 MiB mid-send",
                big.len()
            ),
        }
    } else {
        let (got, end) = conn.body_against(&big[64 * KIB..], rest);
        if let Some(end) = end {
            panic!(
                "the file {change:?} mid-send: the download ended ({end:?}) after {} of {} \
                 bytes",
                64 * KIB + got,
                big.len()
            );
        }
    }
    if change == Change::Grown {
        // Exactly the promised length went out: the next response starts right after it
        // (or the server closed cleanly).
        conn.set_read_timeout(5 * SECOND);
        // A send that fails finds the connection closed: clean too.
        if conn.send(&get_request(Version::HTTP_11, SMALL)).is_ok() {
            let next = conn.head_or_close().unwrap_or_else(|err| {
                panic!("after the grown file's body, the connection held no clean response: {err}")
            });
            if let Some(head) = next {
                assert_eq!(
                    head.status, 200,
                    "the next request on the connection: {}",
                    head.text
                );
                let (got, end) = conn.body_against(SMALL_BODY, SMALL_BODY.len());
                assert_eq!(
                    (got, end),
                    (SMALL_BODY.len(), None),
                    "the next response's body"
                );
            }
        }
    }
    drop(conn);
    rig.assert_healthy(&format!("a download whose file was {change:?} mid-send"));
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 3. Slow readers

/// A client that reads steadily, never pausing for long, gets the whole file however long
/// the download takes: `send_timeout` is the longest pause, not the longest response.
fn slow_steady_reader_gets_whole_file(strategy: Strategy) {
    let site = Site::new();
    let big = site.big("big.bin", 16 * MIB, 6);
    let limits = short_limits();
    let rig = Rig::start(strategy, || site.files(limits, Version::HTTP_10));
    let mut conn = Conn::open_slow(rig.addr);
    conn.send(&get_request(Version::HTTP_10, "/big.bin"))
        .unwrap();
    expect_download_head(&mut conn, 200, big.len());
    // 6 MiB/s: 16 MiB take about 2.7 s, with a pause of a few ms between reads.
    let rate = 6.0 * MIB as f64;
    let started = Instant::now();
    let mut longest_pause = Duration::ZERO;
    let mut got = 0;
    let mut chunk = vec![0u8; 16 * KIB];
    while got < big.len() {
        let due = started + Duration::from_secs_f64(got as f64 / rate);
        let now = Instant::now();
        if due > now {
            let pause = (due - now).min(Duration::from_millis(50));
            thread::sleep(pause);
            longest_pause = longest_pause.max(pause);
        }
        let want = (big.len() - got).min(chunk.len());
        match conn.read(&mut chunk[..want]) {
            Ok(n) => {
                check_bytes(&chunk[..n], &big, got);
                got += n;
            }
            Err(end) => panic!(
                "the response was cut ({end:?}) after {got} of {} bytes, {} ms into a download \
                 read steadily (pauses of at most {} ms, send_timeout {} ms)",
                big.len(),
                started.elapsed().as_millis(),
                longest_pause.as_millis(),
                limits.send_timeout.as_millis()
            ),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= 2 * limits.send_timeout,
        "the download took only {took:?}: too short to show whether send_timeout bounds the \
         whole response"
    );
    drop(conn);
    rig.assert_healthy("a slow, steady download");
    rig.finish();
}

/// A client that stops reading is cut off after about `send_timeout`, and the server idles.
fn stalled_reader_is_cut_off(strategy: Strategy) {
    let site = Site::new();
    let big = site.big("big.bin", 32 * MIB, 7);
    let limits = short_limits();
    let rig = Rig::start(strategy, || site.files(limits, Version::HTTP_10));
    let mut conn = Conn::open_slow(rig.addr);
    conn.send(&get_request(Version::HTTP_10, "/big.bin"))
        .unwrap();
    expect_download_head(&mut conn, 200, big.len());
    expect_prefix(&mut conn, &big, 64 * KIB);
    let stalled = Instant::now();
    // The server's side closes: of the connection only the client's socket is left. The
    // socket takes data for a while after the client stopped reading (on a blocking socket
    // the kernel's send buffer grows, up to tcp_wmem's 4 MiB, for about 3 s here), so the
    // cut may come that much later than send_timeout.
    let limit = limits.send_timeout + 6 * SECOND;
    let mut fds = 0;
    let cut = poll_until(limit, || {
        fds = fd_count();
        fds <= rig.fds_serving() + 1
    });
    let cut_after = stalled.elapsed();
    assert!(
        cut,
        "a client that stopped reading was not cut off within {limit:?} (send_timeout {:?}): \
         fds {fds}, expected {}",
        limits.send_timeout,
        rig.fds_serving() + 1
    );
    assert!(
        cut_after >= limits.send_timeout / 2,
        "a stalled client was cut off after {cut_after:?}, well before send_timeout {:?}",
        limits.send_timeout
    );
    // What was sent before the cut is still readable; then the end, short of the length.
    conn.set_read_timeout(5 * SECOND);
    let (got, end) = conn.body_against(&big[64 * KIB..], big.len() - 64 * KIB);
    match end {
        Some(end) if end.is_close() => {}
        other => panic!(
            "after the cut the client read {} more bytes and then {other:?}, expected the \
             connection to end short of {} bytes",
            got,
            big.len()
        ),
    }
    drop(conn);
    rig.assert_healthy("a client that stopped reading mid-download");
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 4. Slow request bodies and heads

/// Limits under which slow clients live through the test: a byte every 300 ms keeps every
/// per-pause timeout from firing.
/// A handler that runs on the event loop's own thread (the form echo of the file handler)
/// answers 16 MiB (more than the kernel buffers) to a client that does not read: the answer waits with the connection (in a
/// temporary file past 256 KiB), and another client's GET is answered meanwhile. A write
/// that waited for the socket would hold the loop for up to the send timeout, again at
/// every pause of the client.
fn large_answer_to_a_stalled_reader_does_not_block(strategy: Strategy) {
    let site = Site::new();
    let limits = Limits {
        send_timeout: 10 * SECOND,
        ..short_limits()
    };
    let rig = Rig::start(strategy, || site.files(limits, Version::HTTP_10));
    let field = "v".repeat(16 * MIB);
    let body = format!("big={field}");
    let mut stalled = Conn::open_slow(rig.addr);
    let request = format!(
        "POST /form HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stalled.send(request.as_bytes()).unwrap();
    let head = stalled
        .head()
        .unwrap_or_else(|err| panic!("the echo of a 16 MiB form: {err}"));
    assert_eq!(head.status, 200, "the echo of a 16 MiB form: {}", head.text);
    // The client stops reading here, with most of the answer not sent.
    assert_get_within(
        rig.addr,
        2 * SECOND,
        "a 16 MiB answer waited for a stalled client",
    );
    // It still gets all of it once it reads.
    let (page, end) = stalled.until_end();
    assert!(
        end.is_close() && page.windows(field.len()).any(|w| w == field.as_bytes()),
        "the stalled client got {} bytes of the echo, then {end:?}",
        page.len()
    );
    drop(stalled);
    rig.assert_healthy("a 16 MiB answer to a client that read it late");
    rig.finish();
}

fn slow_client_limits() -> Limits {
    Limits {
        head_timeout: 5 * SECOND,
        body_timeout: 5 * SECOND,
        ..short_limits()
    }
}

const TRICKLE: Duration = Duration::from_millis(300);

/// Gives the server a moment to take the slow clients. Not an assertion: a server that one
/// of them blocks takes no more, and the GET that follows (queued behind them, the listen
/// queue is first come first served) is what shows it.
fn settle_slow_clients<H: socketserver::RequestHandler<Request = socketserver::StreamRequest>>(
    rig: &Rig<H>,
    clients: usize,
) {
    rig.try_wait_connections(clients, 2 * SECOND);
}

/// Twenty uploads to a CGI script that trickle their bodies must not keep a GET of a
/// static file waiting.
fn slow_cgi_uploads_do_not_block_static_files(strategy: Strategy) {
    let site = Site::new();
    site.script(
        "cgi-bin/upload.sh",
        "cat > /dev/null\nprintf 'Content-Type: text/plain\\r\\n\\r\\nstored'\n",
    );
    let rig = Rig::start(strategy, || {
        site.cgi(slow_client_limits(), Version::HTTP_10, 5 * SECOND)
    });
    let head = b"POST /cgi-bin/upload.sh HTTP/1.0\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: 1000\r\n\r\n";
    let clients = (0..20).map(|_| (head.to_vec(), vec![b'x'; 1000])).collect();
    let trickle = Trickle::start(rig.addr, clients, TRICKLE);
    settle_slow_clients(&rig, 20);
    assert!(
        poll_until(WAIT, || trickle.rounds() >= 1),
        "the trickle did not start"
    );
    if let Strategy::Pool { .. } = strategy {
        // A pool's threads wait for their clients: slow ones hold them (the event loop is
        // the strategy that does not). The pool must serve again once they stop.
        trickle.stop();
        assert_get_within(rig.addr, WAIT, "20 slow CGI uploads that stopped");
    } else {
        assert_get_within(
            rig.addr,
            2 * SECOND,
            "20 uploads to a CGI script trickled a byte every 300 ms",
        );
        trickle.stop();
    }
    rig.assert_healthy("20 slow CGI uploads that gave up");
    rig.finish();
}

/// Twenty slow POST bodies of every framing and twenty slowloris heads must not delay a
/// GET.
fn slow_bodies_and_heads_do_not_delay_get(strategy: Strategy) {
    let site = Site::new();
    let rig = Rig::start(strategy, || {
        site.files(slow_client_limits(), Version::HTTP_11)
    });
    let form = "POST /small.txt HTTP/1.1\r\nHost: faults\r\n\
                Content-Type: application/x-www-form-urlencoded\r\n";
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(match i % 3 {
            // Fits the request buffer: awaited where it is read.
            0 => (
                format!("{form}Content-Length: 1000\r\n\r\na=").into_bytes(),
                vec![b'b'; 998],
            ),
            // Larger than the buffer: read as it comes.
            1 => (
                format!("{form}Content-Length: 1000000\r\n\r\na=").into_bytes(),
                vec![b'b'; 2000],
            ),
            _ => (
                format!("{form}Transfer-Encoding: chunked\r\n\r\n").into_bytes(),
                b"1\r\nb\r\n".repeat(200),
            ),
        });
    }
    for _ in 0..20 {
        let head = format!(
            "GET {SMALL} HTTP/1.1\r\nHost: faults\r\nX-Slow: {}\r\n\r\n",
            "s".repeat(100)
        );
        clients.push((Vec::new(), head.into_bytes()));
    }
    let trickle = Trickle::start(rig.addr, clients, TRICKLE);
    settle_slow_clients(&rig, 40);
    assert!(
        poll_until(WAIT, || trickle.rounds() >= 1),
        "the trickle did not start"
    );
    if let Strategy::Pool { .. } = strategy {
        // As above: a pool is held by slow clients, and must recover once they stop.
        trickle.stop();
        assert_get_within(
            rig.addr,
            WAIT,
            "20 slow bodies and 20 slow heads that stopped",
        );
    } else {
        assert_get_within(
            rig.addr,
            2 * SECOND,
            "20 POST bodies and 20 request heads trickled a byte every 300 ms",
        );
        trickle.stop();
    }
    rig.assert_healthy("20 slow bodies and 20 slow heads that gave up");
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 5. CGI scripts that escape, hang or die

/// A script that answers, then leaves a process (in a session of its own, out of reach of
/// the kill of the script's group) holding its stdout and stderr: the request must end
/// soon after the script exits, long before the time limit, and the server serve others
/// meanwhile.
fn cgi_background_child_does_not_hold_request(strategy: Strategy) {
    let site = Site::new();
    let pid_file = site.path("escaped.pid");
    site.script(
        "cgi-bin/escape.sh",
        &format!(
            "printf 'Content-Type: text/plain\\r\\n\\r\\nhello'\n\
             setsid sh -c 'echo $$ > {}; exec sleep 30' &\nexit 0\n",
            pid_file.display()
        ),
    );
    // A time limit far away: the request must end once the script has exited, whatever
    // holds its pipes, not when the limit kills it.
    let time_limit = 20 * SECOND;
    let rig = Rig::start(strategy, || {
        site.cgi(short_limits(), Version::HTTP_10, time_limit)
    });
    // Declared after the rig: killed first if the test fails, so the server can stop.
    let mut escaped = Stray::new(pid_file);
    let limit = 3 * SECOND;
    let started = Instant::now();
    let mut conn = Conn::open(rig.addr);
    conn.send(&get_request(Version::HTTP_10, "/cgi-bin/escape.sh"))
        .unwrap();
    assert!(
        escaped.wait_started(),
        "the script did not start its background process"
    );
    assert_get_within(
        rig.addr,
        2 * SECOND,
        "a CGI script's background process held the script's output",
    );
    conn.set_read_timeout(limit.saturating_sub(started.elapsed()));
    let head = conn.head().unwrap_or_else(|err| {
        panic!(
            "no response {} ms after the request (time limit {} ms): {err}; the background \
             process holding the script's stdout and stderr keeps the request open",
            started.elapsed().as_millis(),
            time_limit.as_millis()
        )
    });
    let (body, end) = conn.until_end();
    let took = started.elapsed();
    assert_eq!(head.status, 200, "{}", head.text);
    assert!(
        end == End::Eof && took <= limit,
        "the response did not end within {} ms ({end:?} after {} ms, body {:?}): the \
         background process holding the script's stdout and stderr keeps the request open",
        limit.as_millis(),
        took.as_millis(),
        String::from_utf8_lossy(&body)
    );
    assert_eq!(body, b"hello");
    drop(conn);
    rig.assert_healthy("a CGI script that left a background process holding its output");
    drop(escaped);
    rig.finish();
}

/// A script that prints nothing and never ends gets 504 once the time limit passes.
fn cgi_silent_script_gets_504(strategy: Strategy) {
    let site = Site::new();
    site.script("cgi-bin/silent.sh", "sleep 30\n");
    let time_limit = SECOND;
    let rig = Rig::start(strategy, || {
        site.cgi(short_limits(), Version::HTTP_10, time_limit)
    });
    let limit = time_limit + 2 * SECOND;
    let started = Instant::now();
    let mut conn = Conn::open(rig.addr);
    conn.set_read_timeout(limit);
    conn.send(&get_request(Version::HTTP_10, "/cgi-bin/silent.sh"))
        .unwrap();
    let head = conn.head().unwrap_or_else(|err| {
        panic!(
            "a silent script: {err} after {} ms, expected 504 after the {} ms time limit",
            started.elapsed().as_millis(),
            time_limit.as_millis()
        )
    });
    let (_, end) = conn.until_end();
    let took = started.elapsed();
    assert_eq!(head.status, 504, "a silent script: {}", head.text);
    assert!(
        end == End::Eof && took <= limit,
        "the 504 ended with {end:?} after {} ms, expected a close within {} ms",
        took.as_millis(),
        limit.as_millis()
    );
    drop(conn);
    rig.assert_healthy("a CGI script killed at its time limit");
    rig.finish();
}

/// A script killed after its headers and part of its body: an HTTP/1.1 client must be able
/// to tell the response is incomplete (a chunked body without its last chunk, or a close
/// before the declared length), not receive what looks like a whole response.
fn cgi_killed_mid_output_is_visibly_incomplete(strategy: Strategy) {
    let site = Site::new();
    site.script(
        "cgi-bin/killed.sh",
        "printf 'Content-Type: text/plain\\r\\n\\r\\npartial body'\nkill -9 $$\n",
    );
    let rig = Rig::start(strategy, || {
        site.cgi(short_limits(), Version::HTTP_11, 5 * SECOND)
    });
    let mut conn = Conn::open(rig.addr);
    conn.set_read_timeout(5 * SECOND);
    conn.send(&get_request(Version::HTTP_11, "/cgi-bin/killed.sh"))
        .unwrap();
    let head = conn
        .head()
        .unwrap_or_else(|err| panic!("a script killed mid-output: {err}"));
    if head.status >= 500 {
        // Nothing of the script's answer left: the failure is plain to see.
    } else if head.is_chunked() {
        let (data, last_chunk) = read_chunked(&mut conn);
        assert!(
            !last_chunk,
            "a chunked response ending with its last chunk ({:?}) for a script killed \
             mid-output: it looks complete",
            String::from_utf8_lossy(&data)
        );
    } else if let Some(length) = head.content_length() {
        let (body, end) = conn.until_end();
        assert!(
            (body.len() as u64) < length && end.is_close(),
            "Content-Length {length}, then {} bytes and {end:?} for a script killed \
             mid-output: it looks complete",
            body.len()
        );
    } else {
        let (body, end) = conn.until_end();
        panic!(
            "a response framed by the close ({} bytes {:?}, then {end:?}) for a script killed \
             mid-output: neither chunked nor with a length, it looks complete ({})",
            body.len(),
            String::from_utf8_lossy(&body),
            head.status_line()
        );
    }
    drop(conn);
    rig.assert_healthy("a CGI script killed mid-output");
    rig.finish();
}

/// A 48 MiB upload to a CGI script: the body waits in a temporary file (the event loop's
/// spool, or the CGI handler's), never whole in memory. The process's peak RSS, reset just
/// before, must stay well below the body's size.
fn cgi_large_upload_is_not_held_in_memory(strategy: Strategy) {
    const BODY: usize = 48 << 20;
    let site = Site::new();
    site.script(
        "cgi-bin/count.sh",
        "n=$(wc -c | tr -d ' ')\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$n\"\n",
    );
    let rig = Rig::start(strategy, || {
        site.cgi(short_limits(), Version::HTTP_10, 30 * SECOND)
    });
    // Writing 5 resets the peak (Linux 4.0); without it the peak so far is the baseline.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();
    let mut conn = Conn::open(rig.addr);
    conn.set_read_timeout(WAIT);
    let head = format!(
        "POST /cgi-bin/count.sh HTTP/1.0\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {BODY}\r\n\r\n"
    );
    conn.send(head.as_bytes()).unwrap();
    let piece = vec![b'u'; 64 * 1024];
    for _ in 0..BODY / piece.len() {
        conn.send(&piece).unwrap();
    }
    let head = conn
        .head()
        .unwrap_or_else(|err| panic!("a 48 MiB upload: {err}"));
    let (body, _) = conn.until_end();
    assert_eq!(head.status, 200, "a 48 MiB upload: {}", head.text);
    assert_eq!(String::from_utf8_lossy(&body), BODY.to_string());
    let grew = peak_rss_kib().saturating_sub(before);
    assert!(
        grew < 16 * 1024,
        "the peak RSS grew by {} MiB during a {} MiB upload: the body was held in memory",
        grew / 1024,
        BODY >> 20
    );
    drop(conn);
    rig.assert_healthy("a 48 MiB CGI upload");
    rig.finish();
}

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// A script that declares 100 bytes, prints 12 and is killed: the connection must close,
/// not stay open for the next request, whose answer would complete the short body.
fn cgi_killed_short_of_its_content_length(strategy: Strategy) {
    let site = Site::new();
    site.script(
        "cgi-bin/short.sh",
        "printf 'Content-Type: text/plain\\r\\nContent-Length: 100\\r\\n\\r\\nonly twelve.'\n\
         kill -9 $$\n",
    );
    let rig = Rig::start(strategy, || {
        site.cgi(short_limits(), Version::HTTP_11, 5 * SECOND)
    });
    let mut conn = Conn::open(rig.addr);
    conn.set_read_timeout(5 * SECOND);
    conn.send(&get_request(Version::HTTP_11, "/cgi-bin/short.sh"))
        .unwrap();
    let head = conn
        .head()
        .unwrap_or_else(|err| panic!("a script killed short of its length: {err}"));
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(head.content_length(), Some(100), "{}", head.text);
    // A client that pipelines: its next request is already on the way.
    let _ = conn.send(&get_request(Version::HTTP_11, SMALL));
    let (body, end) = conn.until_end();
    assert!(
        body.len() < 100 && end.is_close(),
        "the body of a script killed after 12 of its 100 bytes ended with {end:?} after {} \
         bytes: {:?}{}",
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(120)]),
        if body.len() >= 100 {
            " (the next response completed it: the connection was kept alive after a short \
             body)"
        } else {
            ""
        }
    );
    drop(conn);
    rig.assert_healthy("a CGI script killed short of its Content-Length");
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 6. Shutdown closes the listener

/// Once `server_close()` returns nobody answers on the port: a connect is refused at once.
fn assert_refused(addr: std::net::SocketAddr, strategy: Strategy, while_: &str) {
    match TcpStream::connect_timeout(&addr, 2 * SECOND) {
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {}
        Ok(_) => panic!(
            "a new connection to {addr} was accepted after shutdown() and server_close() \
             returned on {strategy} ({while_}): the listening socket is still open"
        ),
        Err(err) => panic!(
            "connecting after server_close() on {strategy} ({while_}): {err}, expected \
             ECONNREFUSED"
        ),
    }
}

fn server_close_refuses_new_connections(strategy: Strategy) {
    let site = Site::new();
    let mut rig = Rig::start(strategy, || site.files(short_limits(), Version::HTTP_11));
    // A kept-alive connection, waiting between requests.
    let mut parked = Conn::open(rig.addr);
    parked.send(&get_request(Version::HTTP_11, SMALL)).unwrap();
    let head = parked.head().expect("the kept-alive connection's answer");
    assert_eq!(head.status, 200);
    let (got, end) = parked.body_against(SMALL_BODY, SMALL_BODY.len());
    assert_eq!((got, end), (SMALL_BODY.len(), None));
    rig.shutdown();
    rig.server_close_within(WAIT);
    assert_refused(rig.addr, strategy, "a kept-alive connection was parked");
    drop(parked);
    rig.assert_idle("server_close() with a parked keep-alive connection");
    rig.finish();
}

fn server_close_during_download_refuses_new_connections(strategy: Strategy) {
    let site = Site::new();
    let big = site.big("big.bin", 32 * MIB, 8);
    let limits = short_limits();
    let mut rig = Rig::start(strategy, || site.files(limits, Version::HTTP_10));
    let mut conn = Conn::open_slow(rig.addr);
    conn.send(&get_request(Version::HTTP_10, "/big.bin"))
        .unwrap();
    expect_download_head(&mut conn, 200, big.len());
    expect_prefix(&mut conn, &big, 64 * KIB);
    rig.shutdown();
    // The stalled download may hold server_close() until its send times out, which takes
    // a few seconds more than send_timeout on a blocking socket: the kernel's send buffer
    // first grows and fills.
    rig.server_close_within(WAIT);
    assert_refused(rig.addr, strategy, "a slow download was in flight");
    conn.close();
    rig.assert_idle("server_close() during a slow download");
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 7. Worker counts

/// Set in the child process that runs a `child_*` test of `worker_count`.
const CHILD_ENV: &str = "SOCKETSERVER_FAULTS_CHILD";

mod worker_count {
    //! 100 000 workers must be refused at construction or started as needed: a request
    //! must not abort the process. Each runs in a child process (a copy of this binary
    //! running one ignored test) whose address space is capped, so that eager threads fail
    //! there quickly, and an abort kills only the child.

    use super::faults_support::{serial, Strategy};

    #[test]
    fn event_loop_100000_workers() {
        let _serial = serial();
        super::in_child("worker_count::child_event_loop", "EventLoop::new(100_000)");
    }

    #[test]
    fn thread_pool_100000_workers() {
        let _serial = serial();
        super::in_child(
            "worker_count::child_thread_pool",
            "ThreadPool::new(100_000, 16)",
        );
    }

    #[test]
    #[ignore = "run in a child process by worker_count::event_loop_100000_workers"]
    fn child_event_loop() {
        let _serial = serial();
        super::huge_worker_count(Strategy::Loop { workers: 100_000 });
    }

    #[test]
    #[ignore = "run in a child process by worker_count::thread_pool_100000_workers"]
    fn child_thread_pool() {
        let _serial = serial();
        super::huge_worker_count(Strategy::Pool {
            workers: 100_000,
            queue: 16,
        });
    }
}

/// In the child: a server with 100 000 workers is refused, or serves like any other.
fn huge_worker_count(strategy: Strategy) {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "run only in a child process by its worker_count test: it may start up to 100 000 \
         threads"
    );
    // 4 GiB more than now: room for about 2000 thread stacks of 2 MiB.
    limit_address_space(4 << 30);
    // The server's own account of what failed, for the parent's message.
    let _ = env_logger::Builder::new()
        .filter_level(log::LevelFilter::Error)
        .try_init();
    let site = Site::new();
    // A handler that is not NONBLOCKING: on an event loop its requests go to the workers.
    let rig = match Rig::try_start(strategy, || {
        site.cgi(short_limits(), Version::HTTP_10, 5 * SECOND)
    }) {
        Ok(rig) => rig,
        Err(err) => {
            println!("{strategy} refused at construction: {err}");
            return;
        }
    };
    rig.assert_healthy("the first requests");
    rig.finish();
}

/// Runs `test` of this binary in a child process and fails with what killed it.
fn in_child(test: &str, what: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child process");
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = out_pipe.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = err_pipe.read_to_string(&mut text);
        text
    });
    let mut status = None;
    let ended = poll_until(6 * WAIT, || {
        status = child.try_wait().expect("wait for the child");
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
    let output = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    let panic_message = output
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .nth(1)
        .unwrap_or("")
        .to_string();
    let server_errors: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("ERROR"))
        .take(2)
        .collect();
    let Some(status) = status else {
        panic!(
            "{what}: the child process did not finish within {:?}",
            6 * WAIT
        );
    };
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map_or_else(|_| signal.to_string(), |s| s.as_str().to_string());
        let tail: Vec<&str> = output.lines().rev().take(3).collect();
        panic!(
            "{what}: the process died of {name} serving its first requests ({panic_message}; \
             server errors {server_errors:?}; last output: {:?})",
            tail.into_iter().rev().collect::<Vec<_>>()
        );
    }
    assert!(
        status.success() && output.contains("1 passed"),
        "{what}: {panic_message} (server errors {server_errors:?}; child {status})"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Resets at every stage

fn reset_during_head(strategy: Strategy) {
    let site = Site::new();
    let rig = Rig::start(strategy, || site.files(short_limits(), Version::HTTP_11));
    let mut conn = Conn::open(rig.addr);
    conn.send(b"GET /small.txt HTTP/1.1\r\nHost: fau").unwrap();
    rig.wait_connections(1);
    conn.reset();
    rig.assert_healthy("a reset in the middle of a request head");
    rig.finish();
}

fn reset_during_body(strategy: Strategy) {
    let site = Site::new();
    let rig = Rig::start(strategy, || site.files(short_limits(), Version::HTTP_11));
    // A body that fits the request buffer (awaited where it is read), and one that does
    // not (read as it comes).
    for (length, sent) in [(1000, 100), (1_000_000, 20_000)] {
        let mut conn = Conn::open(rig.addr);
        let mut request = format!(
            "POST /small.txt HTTP/1.1\r\nHost: faults\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\na="
        )
        .into_bytes();
        request.extend(std::iter::repeat_n(b'b', sent - 2));
        conn.send(&request).unwrap();
        rig.wait_connections(1);
        conn.reset();
        rig.assert_healthy(&format!(
            "a reset after {sent} bytes of a {length}-byte request body"
        ));
    }
    rig.finish();
}

fn reset_before_reading_response(strategy: Strategy) {
    let site = Site::new();
    site.big("big.bin", 32 * MIB, 9);
    let rig = Rig::start(strategy, || site.files(short_limits(), Version::HTTP_11));
    // A small window: the server has output waiting when the reset comes.
    let mut conn = Conn::open_slow(rig.addr);
    conn.send(&get_request(Version::HTTP_11, "/big.bin"))
        .unwrap();
    // The answer has begun to arrive; none of it is read.
    let mut first = [0u8; 1];
    let peeked = conn.stream.peek(&mut first);
    assert!(
        matches!(peeked, Ok(1)),
        "no answer began to arrive: {peeked:?}"
    );
    conn.reset();
    rig.assert_healthy("a reset right after a complete request, before reading the answer");
    rig.finish();
}

fn reset_during_sendfile(strategy: Strategy) {
    let site = Site::new();
    let big = site.big("big.bin", 32 * MIB, 10);
    let rig = Rig::start(strategy, || site.files(short_limits(), Version::HTTP_11));
    let mut conn = Conn::open_slow(rig.addr);
    // A range: the file is sent from an offset.
    conn.send(b"GET /big.bin HTTP/1.1\r\nHost: faults\r\nRange: bytes=1000-\r\n\r\n")
        .unwrap();
    expect_download_head(&mut conn, 206, big.len() - 1000);
    expect_prefix(&mut conn, &big[1000..], 64 * KIB);
    conn.reset();
    rig.assert_healthy("a reset 64 KiB into a 32 MiB range response");
    rig.finish();
}

fn reset_during_cgi_output(strategy: Strategy) {
    let site = Site::new();
    let pid_file = site.path("script.pid");
    // 8 MiB in 64 KiB pieces, 20 ms apart.
    site.script(
        "cgi-bin/stream.sh",
        &format!(
            "echo $$ > {}\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\n\
             i=0\nwhile [ $i -lt 128 ]; do head -c 65536 /dev/zero; sleep 0.02; i=$((i+1)); done\n",
            pid_file.display()
        ),
    );
    // A limit far beyond the test: the script must end because the client left.
    let rig = Rig::start(strategy, || {
        site.cgi(short_limits(), Version::HTTP_11, 30 * SECOND)
    });
    let mut script = Stray::new(pid_file);
    let mut conn = Conn::open_slow(rig.addr);
    conn.send(&get_request(Version::HTTP_11, "/cgi-bin/stream.sh"))
        .unwrap();
    let head = conn
        .head()
        .unwrap_or_else(|err| panic!("the streaming script's head: {err}"));
    assert_eq!(head.status, 200, "{}", head.text);
    assert!(script.wait_started(), "the script did not start");
    let zeros = vec![0u8; 64 * KIB];
    if head.is_chunked() {
        // Chunk framing in the way: any 64 KiB will do.
        let mut chunk = vec![0u8; 64 * KIB];
        conn.read(&mut chunk).expect("a first piece of output");
    } else {
        expect_prefix(&mut conn, &zeros, 64 * KIB);
    }
    conn.reset();
    rig.assert_healthy("a reset while a CGI script streamed 8 MiB");
    assert!(
        !script.alive(),
        "the CGI script still runs after its client reset the connection"
    );
    drop(script);
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 9. Half-closed clients

fn half_closed_client_http10(strategy: Strategy) {
    half_closed_client(strategy, Version::HTTP_10);
}

fn half_closed_client_http11(strategy: Strategy) {
    half_closed_client(strategy, Version::HTTP_11);
}

/// A client that sends its request and shuts its sending side down still gets the whole
/// answer, and then the server closes (promptly: the client said it sends nothing more).
fn half_closed_client(strategy: Strategy, version: Version) {
    let site = Site::new();
    let big = site.big("big.bin", 8 * MIB, 11);
    let limits = Limits {
        keep_alive_timeout: 5 * SECOND,
        ..short_limits()
    };
    let rig = Rig::start(strategy, || site.files(limits, version));
    for (target, expected) in [(SMALL, SMALL_BODY), ("/big.bin", &big[..])] {
        let mut conn = Conn::open(rig.addr);
        conn.send(&get_request(version, target)).unwrap();
        conn.half_close();
        let head = conn
            .head()
            .unwrap_or_else(|err| panic!("{version:?} {target} after a half-close: {err}"));
        assert_eq!(head.status, 200, "{}", head.text);
        assert_eq!(head.content_length(), Some(expected.len() as u64));
        let (got, end) = conn.body_against(expected, expected.len());
        assert_eq!(
            end,
            None,
            "{version:?} {target} after a half-close: the body ended after {got} of {} bytes",
            expected.len()
        );
        conn.set_read_timeout(2 * SECOND);
        let started = Instant::now();
        let (rest, end) = conn.until_end();
        assert!(
            rest.is_empty() && end == End::Eof,
            "{version:?} {target} after a half-close: after the response, {} more bytes and \
             {end:?} after {} ms, expected the server to close",
            rest.len(),
            started.elapsed().as_millis()
        );
    }
    rig.assert_healthy(&format!("{version:?} requests from half-closed clients"));
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 10. No descriptor left at accept

fn emfile_at_accept(strategy: Strategy) {
    let site = Site::new();
    let rig = Rig::start(strategy, || site.files(short_limits(), Version::HTTP_10));
    // Sockets made while descriptors are free: connecting them later takes none.
    let sockets: Vec<Socket> = (0..4)
        .map(|_| Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket"))
        .collect();
    let mut conns = Vec::new();
    {
        let _exhausted = NoFreeDescriptors::take();
        for socket in sockets {
            // The kernel completes the handshake in the listen queue; accept() then fails.
            socket
                .connect_timeout(&rig.addr.into(), 2 * SECOND)
                .expect("connect while the server cannot accept");
            let stream: TcpStream = socket.into();
            stream.set_write_timeout(Some(2 * SECOND)).unwrap();
            conns.push(Conn::from_stream(stream));
        }
        conns[0]
            .send(&get_request(Version::HTTP_10, SMALL))
            .unwrap();
        conns[0].set_read_timeout(Duration::from_millis(300));
        let mut byte = [0u8; 1];
        let early = conns[0].read(&mut byte);
        assert_eq!(
            early,
            Err(End::TimedOut),
            "a request was answered while no descriptor was free: the limit did not hold"
        );
        assert_idle(
            &rig.cpu,
            &format!("accept() failing with EMFILE, 4 connections queued, on {strategy}"),
            false,
        );
    }
    // Descriptors are free again: the queued request is answered.
    conns[0].set_read_timeout(5 * SECOND);
    let head = conns[0].head().unwrap_or_else(|err| {
        panic!("the request queued while accept() failed, once descriptors were free: {err}")
    });
    assert_eq!(head.status, 200, "{}", head.text);
    let (body, end) = conns[0].until_end();
    assert_eq!((body.as_slice(), end), (SMALL_BODY, End::Eof));
    drop(conns);
    rig.assert_healthy("accept() failing with EMFILE");
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 11. A directory removed under a listing

fn directory_removed_under_listing(strategy: Strategy) {
    let site = Site::new();
    for i in 0..1000 {
        site.dir.write(&format!("many/entry-{i:04}.txt"), "x");
    }
    let rig = Rig::start(strategy, || site.files(short_limits(), Version::HTTP_10));
    let listing = |what: &str| -> u16 {
        let (head, body) =
            get(rig.addr, "/many/", WAIT).unwrap_or_else(|err| panic!("GET /many/ {what}: {err}"));
        let text = String::from_utf8_lossy(&body);
        match head.status {
            404 => {}
            200 => assert!(
                text.starts_with("<!DOCTYPE HTML>") && text.ends_with("</body>\n</html>\n"),
                "GET /many/ {what}: a 200 that is not a whole listing: {:?}",
                &text[..text.len().min(300)]
            ),
            status => panic!(
                "GET /many/ {what}: {status}, expected a listing or 404: {:?}",
                &text[..text.len().min(300)]
            ),
        }
        head.status
    };
    assert_eq!(listing("before the removal"), 200);
    let dir = site.path("many");
    let remover = thread::spawn(move || fs::remove_dir_all(dir));
    let mut answers = Vec::new();
    while !remover.is_finished() && answers.len() < 50 {
        answers.push(listing("while the directory is removed"));
    }
    remover
        .join()
        .expect("the remover thread")
        .expect("remove the directory");
    assert_eq!(listing("after the removal"), 404);
    rig.assert_healthy(&format!(
        "listings of a directory being removed (answers {answers:?})"
    ));
    rig.finish();
}
