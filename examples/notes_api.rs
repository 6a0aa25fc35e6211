//! A small JSON API with the files of `www/` beside it: notes on `/api/notes` (GET lists,
//! POST `{"text": ...}` adds, DELETE `/api/notes/ID` removes), `/health`, a form on
//! `/submit`, and every other GET and HEAD from the files.
//!
//! Run: `cargo run --example notes_api -- 127.0.0.1:8000`, then
//! `curl -d '{"text": "milk"}' localhost:8000/api/notes` and `curl localhost:8000/api/notes`.
//!
//! The same app on Python's `http.server`, which this file ports line for line. Where
//! they differ, this one is the stricter: `HEAD /api/notes` answers as GET does (Python's
//! goes to the files: 404), and a note whose text is not a string is refused (400).
//!
//! ```python
//! import json
//! import sys
//! import threading
//! from functools import partial
//! from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
//! from urllib.parse import parse_qsl, urlsplit
//!
//! notes, next_id, lock = {}, 0, threading.Lock()
//!
//!
//! class Handler(SimpleHTTPRequestHandler):
//!     protocol_version = "HTTP/1.1"
//!
//!     def send_json(self, code, value):
//!         body = json.dumps(value).encode()
//!         self.send_response(code)
//!         self.send_header("Content-Type", "application/json")
//!         self.send_header("Content-Length", str(len(body)))
//!         self.end_headers()
//!         self.wfile.write(body)
//!
//!     def read_body(self):
//!         return self.rfile.read(int(self.headers.get("Content-Length", 0)))
//!
//!     def do_GET(self):
//!         path = urlsplit(self.path).path
//!         if path == "/health":
//!             self.send_json(200, {"status": "ok"})
//!         elif path == "/api/notes":
//!             with lock:
//!                 self.send_json(200, [{"id": i, "text": t} for i, t in sorted(notes.items())])
//!         else:
//!             super().do_GET()
//!
//!     def do_POST(self):
//!         global next_id
//!         path = urlsplit(self.path).path
//!         if path == "/api/notes":
//!             try:
//!                 text = json.loads(self.read_body())["text"]
//!             except (ValueError, KeyError, TypeError):
//!                 return self.send_error(400, 'expected {"text": "..."}')
//!             with lock:
//!                 next_id += 1
//!                 notes[next_id] = text
//!                 note = {"id": next_id, "text": text}
//!             self.send_json(201, note)
//!         elif path == "/submit":
//!             fields = parse_qsl(self.read_body().decode())
//!             body = "".join(f"{name}={value}\n" for name, value in fields).encode()
//!             self.send_response(200)
//!             self.send_header("Content-Type", "text/plain; charset=utf-8")
//!             self.send_header("Content-Length", str(len(body)))
//!             self.end_headers()
//!             self.wfile.write(body)
//!         else:
//!             self.send_error(501, "Unsupported method ('POST')")
//!
//!     def do_DELETE(self):
//!         path = urlsplit(self.path).path
//!         id = path.removeprefix("/api/notes/")
//!         if id == path or not id.isdigit():
//!             return self.send_error(501, "Unsupported method ('DELETE')")
//!         with lock:
//!             found = notes.pop(int(id), None) is not None
//!         if not found:
//!             return self.send_error(404, "no such note")
//!         self.send_response(204)
//!         self.end_headers()
//!
//!
//! if __name__ == "__main__":
//!     host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000").rsplit(":", 1)
//!     handler = partial(Handler, directory="www")
//!     server = ThreadingHTTPServer((host, int(port)), handler)
//!     print(f"notes_api serving on {host}:{server.server_port}", flush=True)
//!     server.serve_forever()
//! ```

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{HttpHandler, HttpRequest, HttpServer, Version};
use socketserver::HandlerResult;

#[derive(Clone, Serialize)]
struct Note {
    id: u64,
    text: String,
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

#[derive(Default)]
struct Notes {
    next_id: u64,
    notes: BTreeMap<u64, Note>,
}

#[derive(Clone)]
struct Api {
    files: SimpleHttpHandler,
    notes: Arc<Mutex<Notes>>,
}

impl HttpHandler for Api {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.url_path() {
            "/health" => req.send_json(200, &serde_json::json!({"status": "ok"})),
            "/api/notes" => {
                let notes = self.notes.lock().unwrap();
                req.send_json(200, &notes.notes.values().collect::<Vec<_>>())
            }
            _ => self.fallback(req),
        }
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.url_path() {
            "/api/notes" => {
                // Not `{"text": "..."}`: 400, with serde's reason.
                let NewNote { text } = req.body_json()?;
                let mut notes = self.notes.lock().unwrap();
                notes.next_id += 1;
                let note = Note {
                    id: notes.next_id,
                    text,
                };
                notes.notes.insert(note.id, note.clone());
                req.send_json(201, &note)
            }
            "/submit" => {
                let fields = req.body_form()?;
                let lines: String = fields.iter().map(|(n, v)| format!("{n}={v}\n")).collect();
                req.send_text(200, &lines)
            }
            _ => req.send_unsupported(),
        }
    }

    fn do_delete(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let id = req.url_path().strip_prefix("/api/notes/");
        let Some(id) = id.filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        else {
            return req.send_unsupported();
        };
        let mut notes = self.notes.lock().unwrap();
        if id
            .parse()
            .ok()
            .and_then(|id: u64| notes.notes.remove(&id))
            .is_none()
        {
            return req.send_error(404, "no such note");
        }
        req.send_empty(204)
    }

    /// Files, as Python's `super()`; their answer to methods they do not serve is 501.
    fn fallback(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.files.dispatch(req)
    }
}

fn main() -> std::io::Result<()> {
    socketserver::http::log_to_stderr(log::LevelFilter::Info).expect("the only logger");
    let www = concat!(env!("CARGO_MANIFEST_DIR"), "/www");
    let api = Api {
        files: SimpleHttpHandler::new(www)?,
        notes: Arc::default(),
    };
    let server = HttpServer::bind(common::address_arg("127.0.0.1:8000"), api)?;
    common::announce_and_stop_on_signal("notes_api", server.handle());
    server.serve_forever()
}
