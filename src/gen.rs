//! TEMPORARY placeholder until the generator lands (being written in parallel).
pub struct GenConfig { pub seed: u64, pub teams: usize, pub reps_per_team: usize, pub days: u32, pub start_ms: i64, pub activities_per_rep_day: u32, pub disorder_s: u32, pub redeliver_ratio: f64, pub broken_ratio: f64, pub laggard: Option<(usize, usize)> }
pub struct GenEvent { pub ts_ms: i64, pub team_id: String, pub line: String }
pub struct Generator;
impl Generator { pub fn new(_c: GenConfig) -> Self { Generator } }
impl Iterator for Generator { type Item = GenEvent; fn next(&mut self) -> Option<GenEvent> { None } }
