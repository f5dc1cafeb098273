//! The graph's file format: written by [`Graph::write`], read back by [`Graph::read`], which
//! checks every field and never panics or over-allocates on damaged input.
//!
//! ```text
//! "CMHNSWG1"                       magic
//! u32 m, u32 ef_construction, u64 seed
//! u64 nodes                        must equal what the caller expects (from its own checked manifest)
//! u64 entry                        0, or 1<<40 | level<<32 | node
//! nodes x u8                       levels
//! nodes x (u32 len, 2m x u32)      layer-0 lists (unused slots 0)
//! per node of level L > 0, in id order: L x (u32 len, m x u32)   upper lists, layer 1 first
//! ```
//!
//! All integers little-endian. Integrity (checksums) is the caller's: the storage engine keeps a
//! CRC-32 of every file in its manifest. This format checks structure: lengths within
//! capacity, ids below the node count, levels in range, the entry consistent.

use std::io::{Read, Write};

use crate::GraphError;
use crate::config::GraphConfig;
use crate::graph::{Graph, MAX_LEVEL};

const MAGIC: &[u8; 8] = b"CMHNSWG1";

impl Graph {
    /// Writes nodes `0..nodes` (every list must reference only nodes below `nodes`: write the
    /// linked prefix while no insert runs).
    pub fn write(&self, w: &mut impl Write, nodes: usize) -> std::io::Result<()> {
        let nodes = nodes.min(self.len());
        w.write_all(MAGIC)?;
        w.write_all(&(self.config.m as u32).to_le_bytes())?;
        w.write_all(&(self.config.ef_construction as u32).to_le_bytes())?;
        w.write_all(&self.config.seed.to_le_bytes())?;
        w.write_all(&(nodes as u64).to_le_bytes())?;
        let entry = match self.entry() {
            Some((node, level)) if (node as usize) < nodes => {
                (1u64 << 40) | (u64::from(level) << 32) | u64::from(node)
            }
            _ => 0,
        };
        w.write_all(&entry.to_le_bytes())?;
        w.write_all(self.levels.get(..nodes).unwrap_or(&[]))?;
        let mut list = Vec::with_capacity(self.m0);
        let mut buf = Vec::with_capacity((self.m0 + 1) * 4);
        let mut write_list = |w: &mut dyn Write, id: u32, level: u8, cap: usize| {
            list.clear();
            self.neighbours_into(id, level, &mut list);
            list.retain(|n| (*n as usize) < nodes);
            list.truncate(cap);
            buf.clear();
            buf.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for i in 0..cap {
                buf.extend_from_slice(&list.get(i).copied().unwrap_or(0).to_le_bytes());
            }
            w.write_all(&buf)
        };
        for id in 0..nodes as u32 {
            write_list(w, id, 0, self.m0)?;
        }
        for id in 0..nodes as u32 {
            for level in 1..=self.level(id) {
                write_list(w, id, level, self.config.m)?;
            }
        }
        Ok(())
    }

    /// Reads a graph written by [`write`](Self::write). `config` must match the file's `m`,
    /// `ef_construction` and seed, and the file must hold exactly `nodes` nodes; anything else,
    /// and any structural damage, is a [`GraphError::Corrupt`].
    pub fn read(r: &mut impl Read, config: GraphConfig, nodes: usize) -> Result<Graph, GraphError> {
        let mut graph = Graph::new(config)?;
        let mut magic = [0u8; 8];
        read_exact(r, &mut magic, "magic")?;
        if &magic != MAGIC {
            return Err(GraphError::Corrupt("not a graph file (bad magic)".into()));
        }
        let m = u64::from(read_u32(r, "m")?);
        let efc = u64::from(read_u32(r, "ef_construction")?);
        let seed = read_u64(r, "seed")?;
        if m != config.m as u64 || efc != config.ef_construction as u64 || seed != config.seed {
            return Err(GraphError::Corrupt(format!(
                "graph built with m {m}, ef_construction {efc}, seed {seed}; expected m {}, \
                 ef_construction {}, seed {}",
                config.m, config.ef_construction, config.seed
            )));
        }
        let stored = read_u64(r, "node count")?;
        if stored != nodes as u64 {
            return Err(GraphError::Corrupt(format!(
                "graph holds {stored} nodes, expected {nodes}"
            )));
        }
        let entry = read_u64(r, "entry")?;
        let mut levels = vec![0u8; nodes];
        read_exact(r, &mut levels, "levels")?;
        if let Some(bad) = levels.iter().find(|l| **l > MAX_LEVEL) {
            return Err(GraphError::Corrupt(format!(
                "level {bad} above {MAX_LEVEL}"
            )));
        }
        graph.push_nodes_with_levels(&levels)?;
        let mut list = Vec::with_capacity(graph.m0);
        let mut read_list = |r: &mut dyn Read, id: u32, level: u8, cap: usize| {
            let len = read_u32(r, "list length")? as usize;
            if len > cap {
                return Err(GraphError::Corrupt(format!(
                    "node {id} layer {level}: {len} links, at most {cap}"
                )));
            }
            list.clear();
            for _ in 0..cap {
                list.push(read_u32(r, "link")?);
            }
            list.truncate(len);
            if let Some(bad) = list.iter().find(|n| **n as usize >= nodes) {
                return Err(GraphError::Corrupt(format!(
                    "node {id} layer {level} links to node {bad} of {nodes}"
                )));
            }
            graph.store_neighbours(id, level, &list);
            Ok::<usize, GraphError>(len)
        };
        let mut links = 0usize;
        for id in 0..nodes as u32 {
            links += read_list(r, id, 0, config.m0())?;
        }
        for id in 0..nodes as u32 {
            for level in 1..=levels.get(id as usize).copied().unwrap_or(0) {
                read_list(r, id, level, config.m)?;
            }
        }
        let mut rest = [0u8; 1];
        if r.read(&mut rest)
            .map_err(|e| GraphError::Io("trailing bytes".into(), e))?
            != 0
        {
            return Err(GraphError::Corrupt(
                "trailing bytes after the last list".into(),
            ));
        }
        if entry != 0 {
            let (node, level) = (entry as u32, (entry >> 32) as u8);
            if entry >> 40 != 1
                || node as usize >= nodes
                || levels.get(node as usize) != Some(&level)
            {
                return Err(GraphError::Corrupt(format!(
                    "entry {entry:#x} does not name a node of its level"
                )));
            }
            graph.set_entry(node, level);
        } else if links > 0 {
            return Err(GraphError::Corrupt("linked nodes but no entry".into()));
        }
        Ok(graph)
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), GraphError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            GraphError::Corrupt(format!("graph file ends inside the {what}"))
        } else {
            GraphError::Io(what.to_string(), e)
        }
    })
}

fn read_u32(r: &mut (impl Read + ?Sized), what: &str) -> Result<u32, GraphError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            GraphError::Corrupt(format!("graph file ends inside a {what}"))
        } else {
            GraphError::Io(what.to_string(), e)
        }
    })?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read, what: &str) -> Result<u64, GraphError> {
    let mut b = [0u8; 8];
    read_exact(r, &mut b, what)?;
    Ok(u64::from_le_bytes(b))
}
