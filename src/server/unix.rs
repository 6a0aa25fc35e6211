//! Unix stream and Unix datagram transports.
//!
//! Like Python, binding fails with `AddrInUse` if the socket file exists (remove a stale one
//! first). Unlike Python, `server_close` removes the file, but only if it is still the one
//! this server created.

use std::fs;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::transport::{
    adopt_socket, configure_blocking, refuse_proxy_protocol, SocketOptions, Transport,
};
use crate::address::{ClientAddress, ServerAddress};
use crate::socket::{Datagram, DatagramSocket, StreamSocket};

/// The socket file a Unix server bound, identified by device and inode so that closing the
/// server never removes a file some other process put there since.
#[derive(Debug, Default)]
struct SocketFile(OnceLock<(PathBuf, u64, u64)>);

impl SocketFile {
    fn bind(&self, fd: BorrowedFd<'_>, path: &Path) -> io::Result<ServerAddress> {
        SockRef::from(&fd).bind(&SockAddr::unix(path)?)?;
        let meta = fs::metadata(path)?;
        let _ = self.0.set((path.to_path_buf(), meta.dev(), meta.ino()));
        Ok(ServerAddress::Unix(path.to_path_buf()))
    }

    fn remove(&self) {
        if let Some((path, dev, ino)) = self.0.get() {
            match fs::symlink_metadata(path) {
                Ok(meta) if meta.dev() == *dev && meta.ino() == *ino => {
                    if let Err(err) = fs::remove_file(path) {
                        log::warn!("could not remove socket file {}: {err}", path.display());
                    }
                }
                _ => {}
            }
        }
    }
}

/// The path a Unix socket handed in is bound to; empty for an abstract or unnamed one.
/// The server does not remove it at close: whoever bound it owns the file.
fn local_path(socket: &Socket) -> io::Result<PathBuf> {
    Ok(socket
        .local_addr()?
        .as_pathname()
        .map(Path::to_path_buf)
        .unwrap_or_default())
}

fn new_socket(ty: Type) -> io::Result<Socket> {
    let socket = Socket::new(Domain::UNIX, ty, None)?;
    configure_blocking(&socket, ty)?;
    Ok(socket)
}

/// The transport of [`UnixStreamServer`](crate::UnixStreamServer).
#[derive(Debug)]
pub struct UnixStreamTransport {
    listener: UnixListener,
    file: SocketFile,
}

impl UnixStreamTransport {
    /// The listening socket.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl AsFd for UnixStreamTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Transport for UnixStreamTransport {
    type Request = StreamSocket;
    type Address = PathBuf;

    fn create(_path: &PathBuf, options: &SocketOptions) -> io::Result<Self> {
        refuse_proxy_protocol(options, "a Unix stream server")?;
        let socket = new_socket(Type::STREAM)?;
        Ok(UnixStreamTransport {
            listener: UnixListener::from(std::os::fd::OwnedFd::from(socket)),
            file: SocketFile::default(),
        })
    }

    fn bind(&self, path: &PathBuf) -> io::Result<ServerAddress> {
        self.file.bind(self.listener.as_fd(), path)
    }

    fn adopt(
        socket: Socket,
        options: &SocketOptions,
        request_queue_size: i32,
    ) -> io::Result<(Self, PathBuf)> {
        refuse_proxy_protocol(options, "a Unix stream server")?;
        adopt_socket(
            &socket,
            &[Domain::UNIX],
            Type::STREAM,
            None,
            "a Unix stream listener",
            request_queue_size,
        )?;
        let path = local_path(&socket)?;
        Ok((
            UnixStreamTransport {
                listener: UnixListener::from(std::os::fd::OwnedFd::from(socket)),
                file: SocketFile::default(),
            },
            path,
        ))
    }

    fn activate(&self, request_queue_size: i32) -> io::Result<()> {
        SockRef::from(&self.listener).listen(request_queue_size)
    }

    fn get_request(&self) -> io::Result<(StreamSocket, ClientAddress)> {
        let (stream, peer) = self.listener.accept()?;
        stream.set_nonblocking(false)?;
        Ok((StreamSocket::unix(stream), ClientAddress::from_unix(&peer)))
    }

    fn shutdown_request(request: &StreamSocket) {
        let _ = request.shutdown(Shutdown::Write);
    }

    fn close(&self) {
        self.file.remove();
    }
}

/// The transport of [`UnixDatagramServer`](crate::UnixDatagramServer).
#[derive(Debug)]
pub struct UnixDatagramTransport {
    socket: DatagramSocket,
    max_packet_size: usize,
    file: SocketFile,
}

impl UnixDatagramTransport {
    /// The server's socket.
    pub fn socket(&self) -> &DatagramSocket {
        &self.socket
    }
}

impl AsFd for UnixDatagramTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl Transport for UnixDatagramTransport {
    type Request = Datagram;
    type Address = PathBuf;

    fn create(_path: &PathBuf, options: &SocketOptions) -> io::Result<Self> {
        refuse_proxy_protocol(options, "a Unix datagram server")?;
        let socket = new_socket(Type::DGRAM)?;
        Ok(UnixDatagramTransport {
            socket: DatagramSocket::unix(UnixDatagram::from(std::os::fd::OwnedFd::from(socket))),
            max_packet_size: options.max_packet_size,
            file: SocketFile::default(),
        })
    }

    fn bind(&self, path: &PathBuf) -> io::Result<ServerAddress> {
        self.file.bind(self.socket.as_fd(), path)
    }

    fn adopt(
        socket: Socket,
        options: &SocketOptions,
        request_queue_size: i32,
    ) -> io::Result<(Self, PathBuf)> {
        refuse_proxy_protocol(options, "a Unix datagram server")?;
        adopt_socket(
            &socket,
            &[Domain::UNIX],
            Type::DGRAM,
            None,
            "a Unix datagram socket",
            request_queue_size,
        )?;
        let path = local_path(&socket)?;
        Ok((
            UnixDatagramTransport {
                socket: DatagramSocket::unix(UnixDatagram::from(std::os::fd::OwnedFd::from(
                    socket,
                ))),
                max_packet_size: options.max_packet_size,
                file: SocketFile::default(),
            },
            path,
        ))
    }

    fn activate(&self, _request_queue_size: i32) -> io::Result<()> {
        Ok(())
    }

    fn get_request(&self) -> io::Result<(Datagram, ClientAddress)> {
        let (data, from) = self.socket.recv_from(self.max_packet_size)?;
        let socket = self.socket.clone();
        Ok((Datagram { data, socket }, from))
    }

    fn shutdown_request(_request: &Datagram) {}

    fn close(&self) {
        self.file.remove();
    }
}
