//! Plugin metrics (spec §8, §10): `dito_plugin_panics_total{plugin}` and the counters plugins
//! add through the host table, `dito_plugin_counter_total{plugin,name}`. Plugin and counter
//! names appear while Dito runs, so each worker keeps them in an append-only
//! [`SeriesTable`] (one writer, lock-free readers) with a private index, like the request
//! series; the scrape sums the workers.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use super::counters::Counter;
use super::series::SeriesTable;
use crate::fxhash::FxBuildHasher;

/// The counter name that stands for panics (not a valid plugin counter name: it has a dash).
const PANICS: &str = "-panics";

/// One (plugin, counter) series.
#[derive(Debug, Default)]
pub struct PluginSeries {
    labels: OnceLock<(String, String)>,
    value: Counter,
}

/// One worker's plugin series.
pub type PluginTable = SeriesTable<PluginSeries>;

/// The writer's index from labels to series.
#[derive(Debug, Default)]
pub struct PluginIndex(RefCell<HashMap<(String, String), usize, FxBuildHasher>>);

impl PluginIndex {
    /// Adds `delta` to the series (`plugin`, `name`), making it on first use.
    pub fn add(&self, table: &PluginTable, plugin: &str, name: &str, delta: u64) {
        let mut index = self.0.borrow_mut();
        let key = (plugin.to_string(), name.to_string());
        let at = match index.get(&key) {
            Some(&i) => Some(i),
            None => {
                let labels = key.clone();
                let made = table.append(|s| {
                    let _ = s.labels.set(labels);
                });
                if let Some(i) = made {
                    index.insert(key, i);
                }
                made
            }
        };
        if let Some(series) = at.and_then(|i| table.get(i)) {
            series.value.add(delta);
        }
    }

    pub fn panic(&self, table: &PluginTable, plugin: &str) {
        self.add(table, plugin, PANICS, 1);
    }
}

/// Sums of every worker: panics by plugin, and counters by (plugin, name).
pub fn merged(tables: &[&PluginTable]) -> (BTreeMap<String, u64>, BTreeMap<(String, String), u64>) {
    let (mut panics, mut counters) = (BTreeMap::new(), BTreeMap::new());
    for table in tables {
        for s in table.iter() {
            let Some((plugin, name)) = s.labels.get() else {
                continue;
            };
            let v = s.value.get();
            if name == PANICS {
                *panics.entry(plugin.clone()).or_insert(0u64) += v;
            } else {
                *counters
                    .entry((plugin.clone(), name.clone()))
                    .or_insert(0u64) += v;
            }
        }
    }
    (panics, counters)
}
