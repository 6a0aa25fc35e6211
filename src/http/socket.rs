//! The connection's read timeout, set only when it changes: one `setsockopt` saved per
//! keep-alive request.

use std::io;
use std::time::Duration;

use crate::socket::StreamSocket;

pub(crate) struct TimedSocket {
    connection: StreamSocket,
    read_timeout: Option<Duration>,
}

impl TimedSocket {
    pub(crate) fn new(connection: StreamSocket) -> Self {
        TimedSocket {
            connection,
            read_timeout: None,
        }
    }

    pub(crate) fn connection(&self) -> &StreamSocket {
        &self.connection
    }

    /// Makes the next blocking read fail with `WouldBlock`/`TimedOut` after `timeout`.
    pub(crate) fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        // A zero timeout means "block forever" to the kernel.
        let timeout = timeout.max(Duration::from_millis(1));
        if self.read_timeout != Some(timeout) {
            self.connection.set_read_timeout(Some(timeout))?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }
}
