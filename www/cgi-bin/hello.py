#!/usr/bin/env python3
"""A CGI script: run by `simple_http --cgi`, it answers with its CGI environment."""
import html
import os
import sys
from urllib.parse import parse_qsl

query = parse_qsl(os.environ.get("QUERY_STRING", ""), keep_blank_values=True)
length = int(os.environ.get("CONTENT_LENGTH") or 0)
body = sys.stdin.read(length) if length else ""
posted = parse_qsl(body, keep_blank_values=True)
name = dict(posted + query).get("name", "world")

rows = "".join(
    f"<tr><th>{html.escape(k)}</th><td>{html.escape(os.environ.get(k, ''))}</td></tr>"
    for k in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
              "CONTENT_TYPE", "CONTENT_LENGTH", "REMOTE_ADDR", "SERVER_PROTOCOL",
              "SERVER_SOFTWARE", "HTTP_USER_AGENT")
)
page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Hello from CGI</title>
<link rel="stylesheet" href="/style.css"></head>
<body><h1 id="greeting">Hello, {html.escape(name)}!</h1>
<table>{rows}</table></body></html>
"""
data = page.encode("utf-8")
sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n")
sys.stdout.write(f"Content-Length: {len(data)}\r\n\r\n")
sys.stdout.flush()
sys.stdout.buffer.write(data)
