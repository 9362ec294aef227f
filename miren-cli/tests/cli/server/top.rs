//! `miren top` on a real terminal: it takes the alternate screen, redraws each frame
//! in place (cursor home, no scrolling) with the apps' figures, and gives the screen
//! back on Ctrl-C.

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{TestServer, demo_copy};

#[test]
fn top_redraws_in_place_on_a_terminal_and_restores_it_on_ctrl_c() {
    let server = TestServer::start(&[]);
    let app = demo_copy();
    server.deploy(app.path());

    let (mut child, mut master) = super::on_terminal(&server, &["top"]);
    // What the terminal shows, read on a thread so that waiting has a deadline.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Three frames: the first, then two redraws.
    while shown.matches("miren top:").count() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(b) => shown.push_str(&String::from_utf8_lossy(&b)),
            Err(_) => panic!("three frames did not come within 20 s: {shown:?}"),
        }
    }
    assert!(
        shown.starts_with("\x1b[?1049h"),
        "the alternate screen: {shown:?}"
    );
    // Each frame starts at the top left and clears what the last one left.
    assert_eq!(shown.matches("\x1b[Hmiren top:").count(), 3, "{shown:?}");
    assert!(shown.contains("\x1b[J"), "{shown:?}");
    assert!(shown.contains("demo"), "{shown:?}");
    assert!(shown.contains("INSTANCES"), "{shown:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let status = super::wait_exit(&mut child, 10);
    assert!(status.success(), "{status:?}");
    while let Ok(b) = rx.recv_timeout(Duration::from_secs(2)) {
        shown.push_str(&String::from_utf8_lossy(&b));
    }
    assert!(
        shown.ends_with("\x1b[?25h\x1b[?1049l"),
        "the cursor and the screen given back: {shown:?}"
    );
}
