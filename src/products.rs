//! Product lines of one team (contract v1.1): which label a product line
//! gets and the team-level windows of the deal families by product line.
//!
//! Owns: the team's product-line slots (the first
//! `limits.max_product_lines_per_team` distinct names in the order their
//! events are applied, then `other`; `none` for events and deals naming
//! none) and one [`KeyState`] per slot holding only the deal families
//! (created, pipeline added, won, lost, revenue).
//! Must not touch: the joins (a deal's remembered product line is kept in
//! [`crate::joins`] as its slot), rendering, formulas.

use serde::{Deserialize, Serialize};

use crate::measures::Delta;
use crate::state::KeyState;
use crate::time::Micros;
use crate::window::{Periods, Windows};

/// Slot of events and deals that name no product line.
pub const NONE: usize = 0;
/// Slot of the product lines beyond the limit.
pub const OTHER: usize = 1;

/// The product lines of one team.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Products {
    /// Names of slots 2.. in the order they were first applied.
    names: Vec<Box<str>>,
    /// Windows by slot (`None`: nothing applied to that slot yet).
    states: Vec<Option<KeyState>>,
}

impl Products {
    /// The slot of `name` (`None`: the event names none), taking a new slot
    /// while fewer than `max` names have one. The names `none` and `other`
    /// are those two labels.
    pub fn slot(&mut self, name: Option<&str>, max: usize) -> usize {
        let Some(name) = name else { return NONE };
        match name {
            "none" => return NONE,
            "other" => return OTHER,
            _ => {}
        }
        if let Some(i) = self.names.iter().position(|n| &**n == name) {
            return i + 2;
        }
        if self.names.len() < max {
            self.names.push(name.into());
            return self.names.len() + 1;
        }
        OTHER
    }

    /// Adds `d` (deal families only) at `e` to slot `slot`'s windows.
    pub fn add(&mut self, w: &Windows, slot: usize, e: Micros, pe: &Periods, t: Micros, pt: &Periods, d: &Delta) {
        if self.states.len() <= slot {
            self.states.resize_with(slot + 1, || None);
        }
        self.states[slot].get_or_insert_with(|| KeyState::new(w)).add(w, e, pe, t, pt, d);
    }

    /// The label of slot `slot`.
    pub fn label(&self, slot: usize) -> &str {
        match slot {
            NONE => "none",
            OTHER => "other",
            i => self.names.get(i - 2).map_or("other", |n| n),
        }
    }

    /// `(label, windows)` of every slot with state.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &KeyState)> {
        self.states.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (self.label(i), s)))
    }

    pub fn states_mut(&mut self) -> impl Iterator<Item = &mut KeyState> {
        self.states.iter_mut().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.states.iter().all(Option::is_none)
    }

    pub fn heap_bytes(&self) -> usize {
        self.names.iter().map(|n| n.len() + 16).sum::<usize>()
            + self.states.iter().flatten().map(|s| std::mem::size_of::<KeyState>() + s.heap_bytes()).sum::<usize>()
    }

    /// Checks the windows read back from a snapshot.
    pub fn check(&self) -> Result<(), String> {
        if self.states.len() > self.names.len() + 2 {
            return Err("product-line windows without a name".into());
        }
        self.states.iter().flatten().try_for_each(KeyState::check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_names_keep_a_slot_then_other() {
        let mut p = Products::default();
        assert_eq!(p.slot(None, 2), NONE);
        assert_eq!(p.slot(Some("core"), 2), 2);
        assert_eq!(p.slot(Some("none"), 2), NONE);
        assert_eq!(p.slot(Some("other"), 2), OTHER);
        assert_eq!(p.slot(Some("services"), 2), 3);
        assert_eq!(p.slot(Some("core"), 2), 2);
        // the third distinct name: other, and it takes no slot later either
        assert_eq!(p.slot(Some("training"), 2), OTHER);
        assert_eq!(p.slot(Some("training"), 2), OTHER);
        assert_eq!((p.label(2), p.label(3), p.label(NONE), p.label(OTHER)), ("core", "services", "none", "other"));
    }
}
