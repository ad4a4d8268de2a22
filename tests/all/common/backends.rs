//! The backends the conformance suite runs on, each opened fresh and empty.

use std::sync::Arc;

use user_ledger::backend::memory::MemoryBackend;
use user_ledger::backend::sled::directory::Directory;
use user_ledger::backend::sled::{Opened, SledBackend};
use user_ledger::backend::{Backend, OpenMode};

/// A kind of backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Sled,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// An open, empty backend and what it lives in.
pub struct Fresh {
    backend: Arc<dyn Backend>,
    _dir: Option<tempfile::TempDir>,
}

impl Fresh {
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn shared(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }
}

impl Kind {
    /// A new, empty backend of this kind.
    pub fn open(self) -> Fresh {
        match self {
            Kind::Memory => Fresh { backend: Arc::new(MemoryBackend::new()), _dir: None },
            Kind::Sled => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("db");
                let lock = Directory::acquire(&path, OpenMode::Create).unwrap();
                let Opened { backend, .. } = SledBackend::open(lock, 8 << 20, true, 1000).unwrap();
                Fresh { backend: Arc::new(backend), _dir: Some(dir) }
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                let location = super::postgres::fresh_location();
                let backend =
                    user_ledger::backend::postgres::PgBackend::open(&location, OpenMode::Create, true, true)
                        .unwrap();
                Fresh { backend: Arc::new(backend), _dir: None }
            }
        }
    }
}
