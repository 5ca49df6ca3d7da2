//! The real terminal: raw mode, alternate screen and mouse capture on the
//! way in; all undone on the way out, on error and on panic.
use std::{
    io::{self, Stdout},
    sync::Once,
};

use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor::Show,
        event::{self, DisableMouseCapture, EnableMouseCapture},
        execute,
        terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
    },
};
use tokio::sync::mpsc;

use super::AppEvent;

/// Undo everything [`enter`] did (safe to call more than once).
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        Show
    );
}

static HOOK: Once = Once::new();

/// Restore the terminal before the panic message is printed (else it
/// lands on the alternate screen, in raw mode, and is lost).
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// The terminal in UI mode; dropping it restores the terminal.
pub struct Tui {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode, alternate screen, mouse capture, and a panic hook that
/// undoes them.
pub fn enter() -> io::Result<Tui> {
    install_panic_hook();
    enable_raw_mode()?;
    if let Err(e) = execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture) {
        restore();
        return Err(e);
    }
    match Terminal::new(CrosstermBackend::new(io::stdout())) {
        Ok(terminal) => Ok(Tui { terminal }),
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

/// Read keys, mouse and resizes on a thread of their own (blocking reads:
/// no polling, no CPU when idle) into the UI's channel. The thread ends
/// when the UI is gone.
pub fn spawn_input(tx: mpsc::Sender<AppEvent>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                let ev = match event::read() {
                    Ok(ev) => AppEvent::Input(ev),
                    Err(e) => {
                        let _ = tx
                            .blocking_send(AppEvent::Warning(format!("reading the terminal: {e}")));
                        return;
                    }
                };
                if tx.blocking_send(ev).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
}
