//! Per-app shares of a node's request slots for requests that hold a slot long (held polls, a
//! proxied call waiting on a slow provider): one app holding many could otherwise fill the
//! server's slots for every other app.

use std::collections::BTreeMap;
use std::sync::Mutex;

use alter_core::ids::AppId;

/// How many requests of one kind each app may hold at once on this node.
#[derive(Debug)]
pub(crate) struct Shares {
    held: Mutex<BTreeMap<AppId, usize>>,
    per_app: usize,
}

impl Shares {
    /// Shares of `per_app` requests per app.
    pub(crate) const fn new(per_app: usize) -> Shares {
        Shares {
            held: Mutex::new(BTreeMap::new()),
            per_app,
        }
    }

    /// A place for one more request of `app`, if it has one left; given back when dropped.
    pub(crate) fn take(&'static self, app: AppId) -> Option<Share> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(app).or_insert(0);
        if *count >= self.per_app {
            return None;
        }
        *count += 1;
        Some(Share { shares: self, app })
    }
}

/// One request of an app, counted until dropped.
#[derive(Debug)]
pub(crate) struct Share {
    shares: &'static Shares,
    app: AppId,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.app) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.app);
            }
        }
    }
}

/// Polls a node holds at once per app (sign-in polls and approval long-polls together); polls
/// beyond it answer at once.
pub(crate) static HELD_POLLS: Shares = Shares::new(4);

/// Proxied calls a node runs at once per app; beyond it a call is answered 503 `server_busy`
/// (with `Retry-After`) before anything is decided or sent.
pub(crate) static PROXIED_CALLS: Shares = Shares::new(64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_has_its_own_share() {
        static SHARES: Shares = Shares::new(2);
        let (a, b) = (AppId::new(), AppId::new());
        let first = SHARES.take(a);
        let second = SHARES.take(a);
        assert!(first.is_some() && second.is_some());
        assert!(SHARES.take(a).is_none(), "a's share is used up");
        assert!(SHARES.take(b).is_some(), "b keeps its own");
        drop(first);
        assert!(SHARES.take(a).is_some(), "given back when dropped");
    }
}
