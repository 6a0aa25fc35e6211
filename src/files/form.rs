//! What `SimpleHttpHandler` does with a posted form.

use crate::handler::HandlerResult;
use crate::http::{html_escape, HttpRequest};

/// Answers a POSTed `application/x-www-form-urlencoded` form, given its decoded fields (in
/// order, repeated names kept). Implement it to give [`SimpleHttpHandler`](super::SimpleHttpHandler)
/// your own form processing.
pub trait FormHandler: Clone + Send + Sync + 'static {
    /// `handle_form` may wait (see [`HttpHandler::may_block`](crate::http::HttpHandler::may_block)):
    /// forms then run on an event loop's workers.
    const MAY_BLOCK: bool = false;

    /// Answers the form.
    fn handle_form(
        &mut self,
        request: &mut HttpRequest<'_>,
        fields: Vec<(String, String)>,
    ) -> HandlerResult;
}

/// The default form handler: answers an HTML page listing the decoded fields, like the
/// seed program that reads `Content-Length` bytes, urldecodes them and replies.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoForm;

impl FormHandler for EchoForm {
    fn handle_form(
        &mut self,
        request: &mut HttpRequest<'_>,
        fields: Vec<(String, String)>,
    ) -> HandlerResult {
        let mut rows = String::new();
        for (name, value) in &fields {
            rows.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                html_escape(name),
                html_escape(value)
            ));
        }
        let page = format!(
            "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>Form received</title>\n</head>\n<body>\n<h1>Form received</h1>\n\
             <p id=\"summary\">{} field(s) posted to <code>{}</code></p>\n\
             <table id=\"fields\">\n{rows}</table>\n</body>\n</html>\n",
            fields.len(),
            html_escape(request.path.as_str()),
        );
        request.send_html(200, &page)?;
        Ok(())
    }
}
