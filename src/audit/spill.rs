//! An external sort: (key, value) records gathered under a memory budget, spilled to temporary
//! files in sorted runs when the budget is full, and read back merged in key order.
//!
//! What lets audit fold a log of any size in bounded memory. The run files are unlinked
//! temporary files (`tempfile::tempfile`), so a crash leaves nothing behind. Records with equal
//! keys come out in the order they were pushed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use crate::error::{Error, Failure, Result};

/// How many runs of one level are merged into one run of the next: runs form levels like the
/// digits of a counter, so each record is rewritten once per level (log₁₆ of the runs) and the
/// open files and read buffers stay at most FAN_IN per level.
const FAN_IN: usize = 16;

/// Bytes of read buffer per run being merged.
const READ_BUFFER: usize = 64 * 1024;

/// What one record costs beyond its bytes: its entry in the index.
const RECORD_OVERHEAD: usize = std::mem::size_of::<Slot>();

/// Where a record's key and value lie in the arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: usize,
    key_len: u32,
    value_len: u32,
}

/// One record read back: (key, value).
pub type Record = (Vec<u8>, Vec<u8>);

/// Gathers records and sorts them, spilling sorted runs to temporary files past `budget` bytes.
#[derive(Debug)]
pub struct Sorter {
    budget: usize,
    arena: Vec<u8>,
    slots: Vec<Slot>,
    /// Runs in push order, with their levels (0: spilled from memory; L + 1: FAN_IN runs of
    /// level L merged). The runs of one level are always the newest ones, together.
    runs: Vec<(File, u32)>,
    spilled: u64,
}

impl Sorter {
    /// A sorter that holds at most about `budget` bytes of records in memory.
    pub fn new(budget: usize) -> Self {
        Sorter { budget: budget.max(1), arena: Vec::new(), slots: Vec::new(), runs: Vec::new(), spilled: 0 }
    }

    /// Adds a record; spills the records held when the budget is full.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let (Ok(key_len), Ok(value_len)) = (u32::try_from(key.len()), u32::try_from(value.len())) else {
            return Err(Error::internal("a record of 4 GiB or more cannot be sorted"));
        };
        self.slots.push(Slot { at: self.arena.len(), key_len, value_len });
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
        if self.arena.len() + self.slots.len() * RECORD_OVERHEAD >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// How many runs went to disk so far.
    #[cfg(test)]
    pub fn spilled_runs(&self) -> u64 {
        self.spilled
    }

    /// Every record pushed, in key order.
    pub fn finish(mut self) -> Result<Merge> {
        self.sort();
        let held = Source::Memory { arena: std::mem::take(&mut self.arena), slots: self.slots.into_iter() };
        let mut sources = Vec::with_capacity(self.runs.len() + 1);
        for (run, _) in self.runs {
            sources.push(Source::run(run)?);
        }
        sources.push(held);
        Merge::new(sources)
    }

    fn sort(&mut self) {
        let arena = &self.arena;
        let key = |s: &Slot| arena.get(s.at..s.at + s.key_len as usize).unwrap_or_default();
        // Stable, so equal keys keep the order they were pushed in.
        self.slots.sort_by(|a, b| key(a).cmp(key(b)));
    }

    fn spill(&mut self) -> Result<()> {
        self.sort();
        let mut out = BufWriter::new(run_file()?);
        for slot in &self.slots {
            let end = slot.at + slot.key_len as usize + slot.value_len as usize;
            let bytes = self.arena.get(slot.at..end).unwrap_or_default();
            write_record(&mut out, slot.key_len, slot.value_len, bytes)?;
        }
        self.runs.push((rewind(out)?, 0));
        self.spilled += 1;
        self.arena.clear();
        self.slots.clear();
        while let Some(level) = self.full_level() {
            let newest = self.runs.split_off(self.runs.len() - FAN_IN);
            let sources = newest.into_iter().map(|(run, _)| Source::run(run)).collect::<Result<_>>()?;
            let mut out = BufWriter::new(run_file()?);
            for record in Merge::new(sources)? {
                let (key, value) = record?;
                write_record(&mut out, key.len() as u32, value.len() as u32, &[key, value].concat())?;
            }
            self.runs.push((rewind(out)?, level + 1));
        }
        Ok(())
    }

    /// The level whose FAN_IN runs are the newest, if there is one.
    fn full_level(&self) -> Option<u32> {
        let newest = self.runs.get(self.runs.len().checked_sub(FAN_IN)?..)?;
        let level = newest.first()?.1;
        newest.iter().all(|(_, l)| *l == level).then_some(level)
    }
}

/// A new run file: unlinked already, in the system's temporary directory (`TMPDIR`).
fn run_file() -> Result<File> {
    tempfile::tempfile().map_err(|e| {
        let dir = std::env::temp_dir();
        Error::failed_by(Failure::Io, format!("cannot create a sorted run in {}: {e}", dir.display()), e)
    })
}

fn write_record(out: &mut impl Write, key_len: u32, value_len: u32, bytes: &[u8]) -> Result<()> {
    out.write_all(&key_len.to_le_bytes())?;
    out.write_all(&value_len.to_le_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

fn rewind(out: BufWriter<File>) -> Result<File> {
    let mut file = out.into_inner().map_err(|e| Error::from(e.into_error()))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Where merged records come from: a run on disk, or the records still held in memory.
#[derive(Debug)]
enum Source {
    Run(BufReader<File>),
    Memory { arena: Vec<u8>, slots: std::vec::IntoIter<Slot> },
}

impl Source {
    fn run(file: File) -> Result<Self> {
        Ok(Source::Run(BufReader::with_capacity(READ_BUFFER, file)))
    }

    fn next(&mut self) -> Result<Option<Record>> {
        match self {
            Source::Memory { arena, slots } => Ok(slots.next().map(|s| {
                let key_end = s.at + s.key_len as usize;
                let key = arena.get(s.at..key_end).unwrap_or_default().to_vec();
                let value = arena.get(key_end..key_end + s.value_len as usize).unwrap_or_default().to_vec();
                (key, value)
            })),
            Source::Run(reader) => {
                let mut lengths = [0u8; 8];
                match reader.read_exact(&mut lengths) {
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    other => other?,
                }
                let [a, b, c, d, e, f, g, h] = lengths;
                let key_len = u32::from_le_bytes([a, b, c, d]) as usize;
                let value_len = u32::from_le_bytes([e, f, g, h]) as usize;
                let mut key = vec![0; key_len];
                let mut value = vec![0; value_len];
                reader.read_exact(&mut key)?;
                reader.read_exact(&mut value)?;
                Ok(Some((key, value)))
            }
        }
    }
}

/// The records of a [`Sorter`], in key order.
#[derive(Debug)]
pub struct Merge {
    sources: Vec<Source>,
    heads: Vec<Option<Record>>,
}

impl Merge {
    fn new(mut sources: Vec<Source>) -> Result<Self> {
        let heads = sources.iter_mut().map(Source::next).collect::<Result<_>>()?;
        Ok(Merge { sources, heads })
    }
}

impl Iterator for Merge {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        // Few sources (at most FAN_IN + 1): a scan beats a heap. The first of equal keys wins,
        // and earlier sources hold earlier pushes, so equal keys keep their order.
        let mut best: Option<(usize, &[u8])> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some((key, _)) = head {
                if best.is_none_or(|(_, k)| key.as_slice() < k) {
                    best = Some((i, key));
                }
            }
        }
        let (i, _) = best?;
        let next = match self.sources.get_mut(i)?.next() {
            Ok(next) => next,
            Err(e) => return Some(Err(e)),
        };
        let head = self.heads.get_mut(i)?;
        std::mem::replace(head, next).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn merged_runs_equal_a_stable_sort_in_memory(
            records in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), any::<u16>()), 0..300),
            budget in 1usize..2_000,
        ) {
            let mut sorter = Sorter::new(budget);
            for (i, (key, value)) in records.iter().enumerate() {
                sorter.push(key, &[value.to_le_bytes(), (i as u16).to_le_bytes()].concat()).unwrap();
            }
            let got: Vec<Record> = sorter.finish().unwrap().collect::<Result<_>>().unwrap();
            let mut want: Vec<Record> = records
                .iter()
                .enumerate()
                .map(|(i, (key, value))| (key.clone(), [value.to_le_bytes(), (i as u16).to_le_bytes()].concat()))
                .collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_tiny_budget_spills_every_record_and_merges_runs_in_levels() {
        let mut sorter = Sorter::new(1);
        for i in (0..300u32).rev() {
            sorter.push(&i.to_be_bytes(), b"v").unwrap();
        }
        assert_eq!(sorter.spilled_runs(), 300);
        // 300 = 1 × 16² + 2 × 16 + 12: one run of level 2, two of level 1, twelve of level 0.
        let levels: Vec<u32> = sorter.runs.iter().map(|(_, level)| *level).collect();
        assert_eq!(levels, [vec![2, 1, 1], vec![0; 12]].concat());
        let keys: Vec<Vec<u8>> = sorter.finish().unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(keys, (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect::<Vec<_>>());
    }
}
