//! The `salespulse` command line: the binary's edge, where errors become
//! `anyhow` messages and exit codes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use salespulse::config::Config;
use salespulse::engine::{Clock, Core, Shard};
use salespulse::time::{format_rfc3339, parse_rfc3339, wall_now};

#[derive(Parser)]
#[command(name = "salespulse", version, about = "Streaming sales KPIs: CRM events in, Prometheus metrics out")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the live engine: consume CRM events from Kafka and serve /metrics.
    /// Without kafka.brokers it starts an embedded demo broker fed with generated events.
    Run {
        /// Configuration file (defaults and SALESPULSE_* environment variables apply).
        #[arg(long, env = "SALESPULSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Fold an NDJSON file of CRM events (or `-` for stdin) and print the final exposition.
    Replay {
        /// NDJSON file, one event per line; `-` reads standard input.
        file: String,
        /// Evaluate at this instant (RFC 3339) instead of the event clock; also the wall clock for `future`.
        #[arg(long)]
        now: Option<String>,
        /// Configuration file (defaults apply without one).
        #[arg(long, env = "SALESPULSE_CONFIG")]
        config: Option<PathBuf>,
        /// Do not print the per-line messages of invalid events.
        #[arg(long, short)]
        quiet: bool,
        /// Write the page (funnel, leaderboard, below benchmark, replay summary
        /// with the first invalid lines) to this self-contained HTML file
        /// instead of printing the exposition.
        #[arg(long, value_name = "HTML_FILE")]
        report: Option<PathBuf>,
    },
    /// Write a generated, realistic CRM event stream as NDJSON.
    Gen(GenArgs),
    /// Send an NDJSON file of CRM events (or `-` for stdin) to a Kafka topic, keyed by team_id.
    Produce {
        /// NDJSON file, one event per line; `-` reads standard input.
        file: String,
        /// Bootstrap servers (default: kafka.brokers of the configuration).
        #[arg(long, env = "KAFKA_BOOTSTRAP")]
        brokers: Option<String>,
        /// Topic (default: the first of kafka.topics).
        #[arg(long)]
        topic: Option<String>,
        /// Configuration file: brokers, topic and librdkafka properties (SASL/TLS).
        #[arg(long, env = "SALESPULSE_CONFIG")]
        config: Option<PathBuf>,
        /// Send at most this many events per second (a steady stream, e.g. to
        /// measure freshness); default: as fast as the broker takes them.
        #[arg(long)]
        rate: Option<u64>,
    },
    /// Print the bcrypt hash of a password read from standard input (its
    /// first line), for basic_auth_users of http.web_config_file.
    HashPassword {
        /// bcrypt cost (each +1 doubles the time a check takes).
        #[arg(long, default_value_t = 10)]
        cost: u32,
    },
    /// Serve the CRM webhook bridge: CRM webhooks and HTTP events into Kafka (docs/bridge.md).
    Bridge {
        /// Configuration file (the [bridge] and [kafka] sections; SALESPULSE_* variables apply).
        #[arg(long, env = "SALESPULSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print Standard Webhooks headers signing a request body, for `curl -H @-`.
    /// Without --secret: the demo secret of `salespulse run` (README).
    Sign {
        /// The body to sign (the exact bytes that will be sent); `-` reads standard input.
        file: String,
        /// A `whsec_...` secret (one of bridge.webhook_secrets).
        #[arg(long, env = "SALESPULSE_SIGN_SECRET")]
        secret: Option<String>,
        /// The webhook-id header (default: derived from the body).
        #[arg(long)]
        id: Option<String>,
    },
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        file: PathBuf,
    },
}

#[derive(clap::Args)]
#[command(after_help = "Profiles (the benches' sizes; --teams, --reps-per-team, --days and --style override them):\n  \
    small      4 teams x 8 reps, 14 days, compact lines (the default)\n  \
    realistic  40 teams x 12 reps, 90 days, crm lines (~1.8 M events, ~390 MB)\n  \
    large      1000 teams x 10 reps, 30 days, crm lines (~12 M events, ~2.7 GB)\n\
Styles (the same events, only the bytes differ):\n  \
    compact    {\"key\":\"value\",...}; timestamps mostly Z, whole seconds\n  \
    crm        {\"key\": \"value\", ...} as Python's json.dumps writes it; every timestamp\n             \
with a fraction (.250 or .250000) and the team's UTC offset")]
struct GenArgs {
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Size and style of the org: small, realistic or large (see below).
    #[arg(long, default_value = "small", value_parser = clap::builder::PossibleValuesParser::new(salespulse::gen::Profile::NAMES))]
    profile: String,
    /// How lines are written: compact or crm (default: the profile's).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(salespulse::gen::Style::NAMES))]
    style: Option<String>,
    /// Teams (default: the profile's; small: 4).
    #[arg(long)]
    teams: Option<usize>,
    /// Reps per team (default: the profile's; small: 8).
    #[arg(long)]
    reps_per_team: Option<usize>,
    /// Simulated days (default: the profile's; small: 14).
    #[arg(long)]
    days: Option<u32>,
    /// Start of the simulated period (RFC 3339); default: `days` days before today's UTC midnight, so the stream ends today.
    #[arg(long)]
    start: Option<String>,
    /// Outbound touches per rep per working day.
    #[arg(long, default_value_t = 40)]
    activities: u32,
    /// Jitter the order by up to this many seconds of event time.
    #[arg(long, default_value_t = 0)]
    disorder_s: u32,
    /// Share of events delivered twice.
    #[arg(long, default_value_t = 0.0)]
    redeliver: f64,
    /// Share of extra broken lines.
    #[arg(long, default_value_t = 0.0)]
    broken: f64,
    /// TEAM_INDEX:REP_INDEX of a rep whose reach rate is far below benchmark.
    #[arg(long)]
    laggard: Option<String>,
    /// Stop after this many lines.
    #[arg(long)]
    limit: Option<u64>,
    /// Output file (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run { config } => run(config),
        Cmd::Replay { file, now, config, quiet, report } => replay(&file, now.as_deref(), config, quiet, report),
        Cmd::Gen(args) => gen(args),
        Cmd::Produce { file, brokers, topic, config, rate } => produce(&file, brokers, topic, config, rate),
        Cmd::Bridge { config } => bridge(config),
        Cmd::Sign { file, secret, id } => sign(&file, secret, id),
        Cmd::CheckConfig { file } => check_config(file),
        Cmd::HashPassword { cost } => hash_password(cost),
    };
    if let Err(e) = result {
        // A closed pipe (`| head`) is not an error worth a message.
        if e.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe) {
            std::process::exit(0);
        }
        eprintln!("salespulse: error: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging(cfg: &Config) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .with_context(|| format!("log.level {:?} is not a tracing filter", cfg.log.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).with_ansi(io::stderr().is_terminal());
    match cfg.log.format.as_str() {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => bail!("log.format {other:?}: expected text or json"),
    }
    Ok(())
}

fn run(config: Option<PathBuf>) -> Result<()> {
    let cfg = Config::load(config.as_deref()).context("loading configuration")?;
    init_logging(&cfg)?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "salespulse starting");
    for name in salespulse::config::ignored_env_vars() {
        tracing::debug!(variable = %name, "environment variable is not a SALESPULSE_<SECTION>__<KEY> configuration key: ignored");
    }
    salespulse::run::run(cfg)?;
    tracing::info!("salespulse stopped");
    Ok(())
}

/// Invalid lines per reason the report shows.
const REPORT_INVALID_LINES: usize = 5;

fn replay(file: &str, now: Option<&str>, config: Option<PathBuf>, quiet: bool, report: Option<PathBuf>) -> Result<()> {
    let cfg = Config::load(config.as_deref()).context("loading configuration")?;
    let clock = match now {
        Some(s) => Clock::Fixed(parse_rfc3339(s).with_context(|| format!("--now {s:?} is not an RFC 3339 timestamp"))?),
        None => Clock::Event,
    };
    let core = Core::new(cfg.core()?, clock);
    let (mut input, total): (Box<dyn BufRead>, Option<u64>) = if file == "-" {
        (Box::new(BufReader::with_capacity(1 << 20, io::stdin().lock())), None)
    } else {
        let f = File::open(file).with_context(|| format!("opening {file}"))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 20, f)), len)
    };
    let bar = (io::stderr().is_terminal() && total.is_some_and(|n| n > 8 << 20)).then(|| {
        let b = indicatif::ProgressBar::new(total.unwrap_or(0));
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut shard = Shard::new();
    let mut shown = 0u64;
    let mut first_invalid = salespulse::replay::FirstInvalid::new(REPORT_INVALID_LINES);
    let summary = salespulse::replay::replay(
        &mut input,
        &mut shard,
        &core,
        &wall_now,
        &mut |bytes| {
            if let Some(b) = &bar {
                b.set_position(bytes);
            }
        },
        &mut |line, inv, text| {
            first_invalid.note(line, inv, text);
            if !quiet && shown < 20 {
                eprintln!("salespulse: line {line}: invalid event: {inv}");
                shown += 1;
                if shown == 20 {
                    eprintln!("salespulse: further invalid lines are counted, not shown");
                }
            }
        },
    )
    .with_context(|| format!("reading {file}"))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // No event applied with the event clock: render at the wall clock (only
    // the configured benchmarks then).
    let t = shard.clock(&core, wall_now());
    let clock = t.map(format_rfc3339).unwrap_or_else(|| "none (no event applied)".into());
    if let Some(path) = report {
        write_report(&path, file, &shard, &core, t.unwrap_or_else(wall_now), summary.to_json(file, &first_invalid))?;
        eprintln!("salespulse: replay {summary} clock={clock}");
        eprintln!("salespulse: wrote the report to {}", path.display());
        return Ok(());
    }
    let mut out = String::with_capacity(1 << 20);
    let report = salespulse::render::render(&[&shard], &core, t.unwrap_or_else(wall_now), &mut out);
    if report.dropped > 0 {
        eprintln!(
            "salespulse: warning: limits.max_series ({}) exceeded: {} series dropped ({})",
            report.max_series,
            report.dropped,
            report.summary()
        );
    }
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    w.write_all(out.as_bytes())?;
    w.flush()?;
    eprintln!("salespulse: replay {summary} clock={clock}");
    Ok(())
}

/// `replay --report`: the page with one document per window, rendered with
/// every family and window (the configured profile and budget aside), and
/// the replay's summary.
fn write_report(path: &std::path::Path, file: &str, shard: &Shard, core: &Core, t: i64, summary: serde_json::Value) -> Result<()> {
    use salespulse::kpi_json;
    let view = Core::new(kpi_json::full_view(&core.cfg), core.clock);
    let mut text = String::with_capacity(1 << 20);
    salespulse::render::render(&[shard], &view, t, &mut text);
    let windows: Vec<String> = core.cfg.windows.defs.iter().map(|d| d.name.clone()).collect();
    let ctx = kpi_json::Context { windows: &windows, clock: Some(format_rfc3339(t)), source: "replay" };
    let data = kpi_json::report_data(&text, &ctx, summary).context("building the report")?;
    std::fs::write(path, salespulse::page::report(&data)).with_context(|| format!("writing {} (report of {file})", path.display()))?;
    Ok(())
}

fn gen(a: GenArgs) -> Result<()> {
    use salespulse::gen::{GenConfig, Generator, Profile, Style};
    // The value parsers only let the listed names through.
    let profile = Profile::parse(&a.profile).with_context(|| format!("--profile {}: expected small, realistic or large", a.profile))?.config();
    let style = match a.style.as_deref() {
        Some(s) => Style::parse(s).with_context(|| format!("--style {s}: expected compact or crm"))?,
        None => profile.style,
    };
    let teams = a.teams.unwrap_or(profile.teams);
    let reps_per_team = a.reps_per_team.unwrap_or(profile.reps_per_team);
    let days = a.days.unwrap_or(profile.days);
    let laggard = match a.laggard.as_deref() {
        None => None,
        Some(s) => {
            let (t, r) = s.split_once(':').context("--laggard expects TEAM_INDEX:REP_INDEX, e.g. 0:3")?;
            let (t, r): (usize, usize) = (t.parse()?, r.parse()?);
            if t >= teams || r >= reps_per_team {
                bail!("--laggard {s}: there are {teams} teams of {reps_per_team} reps (indexes start at 0)");
            }
            Some((t, r))
        }
    };
    let start_ms = match &a.start {
        Some(s) => parse_rfc3339(s).with_context(|| format!("--start {s:?} is not RFC 3339"))? / 1000,
        None => {
            let day = salespulse::time::MICROS_PER_DAY;
            (wall_now().div_euclid(day) - days as i64) * day / 1000
        }
    };
    let cfg = GenConfig {
        seed: a.seed,
        teams,
        reps_per_team,
        days,
        start_ms,
        activities_per_rep_day: a.activities,
        disorder_s: a.disorder_s,
        redeliver_ratio: a.redeliver,
        broken_ratio: a.broken,
        laggard,
        follow_ups: true,
        style,
    };
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut n = 0u64;
    for ev in Generator::new(cfg) {
        if a.limit.is_some_and(|l| n >= l) {
            break;
        }
        w.write_all(ev.line.as_bytes())?;
        w.write_all(b"\n")?;
        n += 1;
    }
    w.flush()?;
    eprintln!("salespulse: gen wrote {n} events");
    Ok(())
}

fn produce(file: &str, brokers: Option<String>, topic: Option<String>, config: Option<PathBuf>, rate: Option<u64>) -> Result<()> {
    let cfg = Config::load(config.as_deref()).context("loading configuration")?;
    let brokers = brokers.filter(|b| !b.trim().is_empty()).unwrap_or_else(|| cfg.kafka.brokers.clone());
    if brokers.trim().is_empty() {
        bail!("no brokers: pass --brokers HOST:PORT, set KAFKA_BOOTSTRAP, or set kafka.brokers in the configuration");
    }
    let topic = match topic.or_else(|| cfg.kafka.topics.first().cloned()) {
        Some(t) => t,
        None => bail!("no topic: pass --topic or set kafka.topics"),
    };
    let mut input: Box<dyn BufRead> = if file == "-" {
        Box::new(BufReader::with_capacity(1 << 20, io::stdin().lock()))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, File::open(file).with_context(|| format!("opening {file}"))?))
    };
    let props: Vec<(String, String)> = cfg.kafka.properties.clone().into_iter().collect();
    let start = std::time::Instant::now();
    let verbose = io::stderr().is_terminal();
    let s = salespulse::run::produce::produce(&brokers, &topic, &props, rate, &mut input, &mut |n| {
        if verbose {
            eprint!("\rsalespulse: produced {n} events");
        }
    })
    .with_context(|| format!("producing to {topic} on {brokers}"))?;
    if verbose {
        eprintln!();
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "salespulse: produce sent={} unkeyed={} empty_lines={} topic={topic} brokers={brokers} events/s={:.0}",
        s.sent,
        s.unkeyed,
        s.empty,
        s.sent as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn hash_password(cost: u32) -> Result<()> {
    let mut line = String::new();
    io::stdin().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("no password on standard input (e.g. printf %s \"$PASSWORD\" | salespulse hash-password)");
    }
    let hash = bcrypt::hash(password, cost).map_err(|e| anyhow::anyhow!("bcrypt: {e}"))?;
    println!("{hash}");
    Ok(())
}

fn bridge(config: Option<PathBuf>) -> Result<()> {
    let cfg = Config::load(config.as_deref()).context("loading configuration")?;
    init_logging(&cfg)?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "salespulse bridge starting");
    salespulse::bridge::serve(cfg)?;
    Ok(())
}

fn sign(file: &str, secret: Option<String>, id: Option<String>) -> Result<()> {
    use salespulse::bridge::auth::WebhookSecret;
    let body = if file == "-" {
        let mut b = Vec::new();
        io::Read::read_to_end(&mut io::stdin().lock(), &mut b)?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("reading {file}"))?
    };
    let secret = secret.unwrap_or_else(|| salespulse::bridge::DEMO_SECRET.to_string());
    let key = WebhookSecret::parse(&secret).context("--secret is not a Standard Webhooks secret (whsec_<base64>)")?;
    let id = id.unwrap_or_else(|| {
        use sha2::Digest;
        format!("msg_{}", &hex::encode(sha2::Sha256::digest(&body))[..24])
    });
    let ts = wall_now().div_euclid(1_000_000);
    println!("webhook-id: {id}");
    println!("webhook-timestamp: {ts}");
    println!("webhook-signature: {}", key.sign(&id, ts, &body));
    Ok(())
}

fn check_config(file: PathBuf) -> Result<()> {
    let cfg = Config::load(Some(&file)).with_context(|| format!("{}", file.display()))?;
    let core = cfg.core()?;
    if !cfg.http.web_config_file.trim().is_empty() {
        let web = salespulse::run::web::WebConfig::load(std::path::Path::new(cfg.http.web_config_file.trim()))?;
        println!("http.web_config_file: ok ({} TLS, {} basic-auth users)", if web.tls.is_some() { "with" } else { "without" }, web.auth.user_count());
    }
    // The [bridge] section: credentials, mappings and lookup tables load.
    let brokers = if cfg.kafka.brokers.is_empty() { "127.0.0.1:9" } else { cfg.kafka.brokers.as_str() };
    let bridge = salespulse::bridge::Bridge::new(&cfg, brokers, cfg.kafka.brokers.is_empty())?;
    println!("{}: ok", file.display());
    println!(
        "windows: {}; time zone {}; {} benchmarks; kafka: {}",
        core.windows.defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "),
        cfg.windows.time_zone,
        core.benchmarks.len(),
        if cfg.kafka.brokers.is_empty() { "embedded demo broker".to_string() } else { cfg.kafka.brokers.clone() }
    );
    println!("bridge routes: {}", bridge.routes().join(", "));
    for (level, set) in [("rep", &core.profile.rep), ("team", &core.profile.team)] {
        let windows: Vec<&str> = core.windows.defs.iter().zip(&set.windows).filter(|(_, on)| **on).map(|(d, _)| d.name.as_str()).collect();
        println!(
            "exposition.{level}: {} families in windows {}",
            set.families.iter().filter(|on| **on).count(),
            if windows.is_empty() { "(none)".to_string() } else { windows.join(", ") }
        );
    }
    println!("limits: max_series {}, max_reps {}, max_reps_per_team {}", core.max_series, core.max_reps, core.max_reps_per_team);
    Ok(())
}
