//! KPI derivation: every windowed `sales_*` family of `metrics.md`, its HELP
//! text and the formula that turns a window's [`Totals`] into its value.
//!
//! Owns: the family table ([`WINDOW_FAMILIES`]), the omission rules (0 counts
//! omitted, ratios only with a denominator above 0, cost ratios only with
//! spend), the Wilson upper bound, growth, quota attainment.
//! Must not touch: state layout, text formatting (see [`crate::render`]).
//!
//! To find a formula, grep for its family name: e.g. `reach_ratio` is
//! `meaningful_conversations / outbound_activities`.

use crate::measures::Totals;

/// z for a 95 % two-sided Wilson score interval.
pub const WILSON_Z: f64 = 1.96;

/// What a family's formula may read about one window of one rep or team.
pub struct WindowView<'a> {
    pub t: &'a Totals,
    /// Revenue of the previous window of the same length (rolling windows).
    pub prev_revenue: Option<f64>,
    /// Reps active in the window (team level only).
    pub active_reps: Option<u64>,
    /// The quota this window is measured against (`mtd`: month, `qtd`: quarter).
    pub quota: Option<f64>,
    /// `mtd` / `qtd` once 24 hours of the period have passed: the length of
    /// the period / the time elapsed since its start (projected attainment).
    pub run_rate: Option<f64>,
}

pub type ValueFn = fn(&WindowView) -> Option<f64>;

/// Where a family exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    RepAndTeam,
    TeamOnly,
    /// Team level, one series per product line (label `product_line`), read
    /// from the team's product-line windows.
    ProductLine,
}

/// One windowed series kind: a family name, optionally with one extra label.
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub scope: Scope,
    pub label: Option<(&'static str, &'static str)>,
    pub value: ValueFn,
}

/// A count: omitted when 0.
fn count(n: u64) -> Option<f64> {
    (n > 0).then_some(n as f64)
}

/// A sum of amounts: omitted when 0.
fn sum(x: f64) -> Option<f64> {
    (x != 0.0).then_some(x)
}

/// A ratio: exported whenever the denominator is above 0.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// Upper bound of the Wilson score interval for `successes` of `n` trials,
/// the proportion capped at 1.
pub fn wilson_upper(successes: f64, n: f64) -> Option<f64> {
    if n <= 0.0 {
        return None;
    }
    let z = WILSON_Z;
    let z2 = z * z;
    let p = (successes / n).min(1.0);
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some((centre + spread) / (1.0 + z2 / n))
}

fn within_1h(v: &WindowView) -> Option<f64> {
    ratio(v.t.f.lead_responses_within_1h as f64, v.t.f.lead_responses as f64)
}

macro_rules! fam {
    ($name:literal, $help:literal, $f:expr) => {
        Family { name: $name, help: $help, scope: Scope::RepAndTeam, label: None, value: $f }
    };
    (team $name:literal, $help:literal, $f:expr) => {
        Family { name: $name, help: $help, scope: Scope::TeamOnly, label: None, value: $f }
    };
    (product $name:literal, $help:literal, $f:expr) => {
        Family { name: $name, help: $help, scope: Scope::ProductLine, label: None, value: $f }
    };
    ($scope:ident $name:literal, $label:literal = $lv:literal, $help:literal, $f:expr) => {
        Family { name: $name, help: $help, scope: Scope::$scope, label: Some(($label, $lv)), value: $f }
    };
}

/// Every family with a `window` label, in exposition order. Entries with the
/// same name are adjacent (one family, several label values).
pub static WINDOW_FAMILIES: &[Family] = &[
    // Counts.
    fam!("sales_leads_created", "Leads created (lead.created) in the window.", |v| count(v.t.f.leads_created)),
    fam!("sales_mqls", "Leads qualified as MQL in the window.", |v| count(v.t.f.mqls)),
    fam!("sales_sqls", "Leads qualified as SQL in the window.", |v| count(v.t.f.sqls)),
    fam!("sales_outbound_activities", "Outbound calls and emails in the window.", |v| count(v.t.act.outbound)),
    fam!("sales_inbound_activities", "Inbound calls and emails in the window.", |v| count(v.t.act.inbound)),
    fam!("sales_outbound_calls", "Outbound calls in the window.", |v| count(v.t.act.outbound_calls)),
    fam!("sales_connects", "Outbound calls that connected (connected or meaningful) in the window.", |v| count(v.t.act.connects)),
    fam!("sales_meaningful_conversations", "Outbound activities with a meaningful conversation in the window.", |v| count(v.t.act.meaningful)),
    fam!("sales_meetings_booked", "Meetings booked in the window.", |v| count(v.t.f.meetings_booked)),
    fam!("sales_meetings_held", "Meetings held in the window.", |v| count(v.t.f.meetings_held)),
    fam!("sales_meetings_no_show", "Meetings the prospect did not attend in the window.", |v| count(v.t.f.meetings_no_show)),
    fam!("sales_meetings_rescheduled_by_rep", "Meetings rescheduled by the rep in the window.", |v| count(v.t.f.meetings_rescheduled_by_rep)),
    fam!("sales_deals_created", "New deals put on the forecast (deal.created of a deal not already open) in the window.", |v| count(v.t.f.deals_created)),
    fam!("sales_pipeline_added", "Amount of the deals created in the window (reporting currency).", |v| sum(v.t.f.pipeline_added)),
    fam!("sales_quotes_sent", "Quotes sent in the window.", |v| count(v.t.f.quotes_sent)),
    fam!("sales_deals_won", "Deals won in the window.", |v| count(v.t.f.deals_won)),
    fam!("sales_deals_lost", "Deals lost in the window.", |v| count(v.t.f.deals_lost)),
    fam!("sales_revenue", "Amount of the deals won in the window (reporting currency).", |v| sum(v.t.f.revenue)),
    fam!("sales_new_customers", "Deals won of kind new in the window.", |v| count(v.t.f.new_customers)),
    fam!("sales_upsell_deals", "Deals won of kind upsell or cross_sell in the window.", |v| count(v.t.f.upsell_deals)),
    fam!("sales_margin", "Margin of the deals won in the window that carry one (reporting currency).", |v| sum(v.t.f.margin)),
    fam!("sales_nps_responses", "NPS survey answers in the window.", |v| count(v.t.f.nps_responses)),
    fam!("sales_nps_promoters", "NPS answers scoring 9-10 in the window.", |v| count(v.t.f.nps_promoters)),
    fam!("sales_nps_detractors", "NPS answers scoring 0-6 in the window.", |v| count(v.t.f.nps_detractors)),
    fam!(RepAndTeam "sales_churned_customers", "reason" = "involuntary", "Customers churned in the window, by reason.", |v| count(v.t.f.churned_involuntary)),
    fam!(RepAndTeam "sales_churned_customers", "reason" = "voluntary", "Customers churned in the window, by reason.", |v| count(v.t.f.churned_voluntary)),
    fam!("sales_churned_mrr", "Monthly recurring revenue of the customers churned in the window.", |v| sum(v.t.f.churned_mrr)),
    fam!(TeamOnly "sales_spend", "category" = "marketing", "Money spent to win customers in the window, by category (team level).", |v| sum(v.t.f.spend_marketing)),
    fam!(TeamOnly "sales_spend", "category" = "sales", "Money spent to win customers in the window, by category (team level).", |v| sum(v.t.f.spend_sales)),
    fam!(team "sales_active_reps", "Reps with at least one applied event in the window, quota.set not counted (team level).", |v| count(v.active_reps.unwrap_or(0))),
    // Ratios and derived values.
    fam!("sales_reach_ratio", "Reach rate: meaningful conversations / outbound activities.", |v| ratio(v.t.act.meaningful as f64, v.t.act.outbound as f64)),
    fam!("sales_connect_ratio", "Connect rate: connects / outbound calls.", |v| ratio(v.t.act.connects as f64, v.t.act.outbound_calls as f64)),
    fam!("sales_pass_ratio", "Pass rate: SQLs / meaningful conversations.", |v| ratio(v.t.f.sqls as f64, v.t.act.meaningful as f64)),
    fam!("sales_pipe_ratio", "Pipe rate: deals created / SQLs.", |v| ratio(v.t.f.deals_created as f64, v.t.f.sqls as f64)),
    fam!("sales_no_show_ratio", "No-show rate: no-shows / (held + no-shows).", |v| ratio(v.t.f.meetings_no_show as f64, (v.t.f.meetings_held + v.t.f.meetings_no_show) as f64)),
    fam!("sales_lead_to_mql_ratio", "MQLs / leads created.", |v| ratio(v.t.f.mqls as f64, v.t.f.leads_created as f64)),
    fam!("sales_mql_to_sql_ratio", "SQLs / MQLs.", |v| ratio(v.t.f.sqls as f64, v.t.f.mqls as f64)),
    fam!("sales_win_ratio", "Win rate: deals won / (won + lost).", |v| ratio(v.t.f.deals_won as f64, (v.t.f.deals_won + v.t.f.deals_lost) as f64)),
    fam!("sales_close_ratio", "Close rate: deals won / quotes sent.", |v| ratio(v.t.f.deals_won as f64, v.t.f.quotes_sent as f64)),
    fam!("sales_upsell_ratio", "Upsell and cross-sell deals / deals won.", |v| ratio(v.t.f.upsell_deals as f64, v.t.f.deals_won as f64)),
    fam!("sales_margin_ratio", "Margin / amount of the won deals that carry a margin.", |v| ratio(v.t.f.margin, v.t.f.margin_base)),
    fam!("sales_avg_deal_size", "Average deal size: revenue / deals won.", |v| ratio(v.t.f.revenue, v.t.f.deals_won as f64)),
    fam!("sales_nps", "Net Promoter Score: 100 x (promoters - detractors) / responses.", |v| ratio(100.0 * (v.t.f.nps_promoters as f64 - v.t.f.nps_detractors as f64), v.t.f.nps_responses as f64)),
    fam!(team "sales_cost_per_lead", "Marketing spend / leads created (team level; omitted without marketing spend).", |v| {
        if v.t.f.spend_marketing > 0.0 { ratio(v.t.f.spend_marketing, v.t.f.leads_created as f64) } else { None }
    }),
    fam!(team "sales_cac", "Customer acquisition cost: (marketing + sales spend) / new customers (team level; omitted without spend).", |v| {
        let spend = v.t.f.spend_marketing + v.t.f.spend_sales;
        if spend > 0.0 { ratio(spend, v.t.f.new_customers as f64) } else { None }
    }),
    fam!(team "sales_revenue_per_rep", "Revenue / active reps (team level).", |v| ratio(v.t.f.revenue, v.active_reps.unwrap_or(0) as f64)),
    fam!("sales_growth_ratio", "Revenue growth against the previous window of the same length (rolling windows).", |v| {
        v.prev_revenue.and_then(|p| ratio(v.t.f.revenue - p, p))
    }),
    fam!("sales_quota_attainment_ratio", "Revenue / quota of the period (mtd: month, qtd: quarter).", |v| v.quota.and_then(|q| ratio(v.t.f.revenue, q))),
    fam!("sales_reach_upper95_ratio", "Upper bound of the 95% Wilson interval of the reach rate: below a benchmark means confidently below it.", |v| {
        wilson_upper(v.t.act.meaningful as f64, v.t.act.outbound as f64)
    }),
    fam!("sales_pipe_upper95_ratio", "Upper bound of the 95% Wilson interval of the pipe rate (proportion capped at 1).", |v| {
        wilson_upper(v.t.f.deals_created as f64, v.t.f.sqls as f64)
    }),
    // Durations.
    fam!("sales_lead_responses", "Lead-response observations: first outbound activity after a lead was created.", |v| count(v.t.f.lead_responses)),
    fam!("sales_lead_response_mean_seconds", "Mean lead response time.", |v| ratio(v.t.f.response_seconds, v.t.f.lead_responses as f64)),
    fam!("sales_lead_response_p50_seconds", "Median lead response time (nearest rank, within 1%).", |v| v.t.f.response.quantile(1, 2)),
    fam!("sales_lead_response_p90_seconds", "90th percentile lead response time (nearest rank, within 1%).", |v| v.t.f.response.quantile(9, 10)),
    fam!("sales_lead_response_within_1h_ratio", "Share of lead responses within 3600 seconds.", within_1h),
    fam!("sales_cycles", "Sales-cycle observations: deals won with a known start.", |v| count(v.t.f.cycles)),
    fam!("sales_cycle_mean_seconds", "Mean sales cycle (lead created, else deal created, to won).", |v| ratio(v.t.f.cycle_seconds, v.t.f.cycles as f64)),
    fam!("sales_cycle_p50_seconds", "Median sales cycle (nearest rank, within 1%).", |v| v.t.f.cycle.quantile(1, 2)),
    fam!("sales_cycle_p90_seconds", "90th percentile sales cycle (nearest rank, within 1%).", |v| v.t.f.cycle.quantile(9, 10)),
    // v1.1: follow-up persistence (leads observed at their creation + horizons.persistence).
    fam!("sales_followed_leads", "Leads whose follow-up horizon (creation + horizons.persistence) ended in the window.", |v| count(v.t.f.followed_leads)),
    fam!("sales_lead_touches_mean", "Mean outbound touches of the followed leads within their horizon.", |v| {
        ratio(v.t.f.followed_touches as f64, v.t.f.followed_leads as f64)
    }),
    fam!("sales_leads_single_touch_ratio", "Share of the followed leads with exactly one touch and no SQL (gave up after one).", |v| {
        ratio(v.t.f.followed_ge1.saturating_sub(v.t.f.followed_ge2) as f64, v.t.f.followed_leads as f64)
    }),
    fam!("sales_leads_untouched_ratio", "Share of the followed leads with no touch and no SQL.", |v| {
        ratio(v.t.f.followed_leads.saturating_sub(v.t.f.followed_ge1) as f64, v.t.f.followed_leads as f64)
    }),
    // v1.1: touches to SQL.
    fam!("sales_sql_conversions", "First SQLs of known leads in the window.", |v| count(v.t.f.sql_conversions)),
    fam!("sales_touches_to_sql_mean", "Mean outbound activities of a lead up to its first SQL.", |v| {
        ratio(v.t.f.sql_touches as f64, v.t.f.sql_conversions as f64)
    }),
    // v1.1: funnel end to end, forecast.
    fam!("sales_lead_to_customer_ratio", "New customers / leads created in the window (a flow ratio).", |v| {
        ratio(v.t.f.new_customers as f64, v.t.f.leads_created as f64)
    }),
    fam!("sales_projected_quota_attainment_ratio", "Quota attainment projected to the end of the period at the run rate so far (after its first 24 hours).", |v| {
        let (q, k) = (v.quota?, v.run_rate?);
        ratio(v.t.f.revenue, q).map(|a| a * k)
    }),
    // v1.1: product lines (team level).
    fam!(product "sales_deals_created_by_product", "Deals created in the window, by product line (team level).", |v| count(v.t.f.deals_created)),
    fam!(product "sales_pipeline_added_by_product", "Amount of the deals created in the window, by product line (team level).", |v| sum(v.t.f.pipeline_added)),
    fam!(product "sales_deals_won_by_product", "Deals won in the window, by product line (team level).", |v| count(v.t.f.deals_won)),
    fam!(product "sales_deals_lost_by_product", "Deals lost in the window, by product line (team level).", |v| count(v.t.f.deals_lost)),
    fam!(product "sales_revenue_by_product", "Amount of the deals won in the window, by product line (team level).", |v| sum(v.t.f.revenue)),
    fam!(product "sales_win_ratio_by_product", "Win rate by product line: won / (won + lost) (team level).", |v| {
        ratio(v.t.f.deals_won as f64, (v.t.f.deals_won + v.t.f.deals_lost) as f64)
    }),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str, v: &WindowView) -> Option<f64> {
        let f = WINDOW_FAMILIES.iter().find(|f| f.name == name).unwrap();
        (f.value)(v)
    }

    fn view(t: &Totals) -> WindowView<'_> {
        WindowView { t, prev_revenue: None, active_reps: None, quota: None, run_rate: None }
    }

    #[test]
    fn wilson_matches_hand_computation() {
        // 1 of 2: (0.5 + 0.9604 + 1.96*sqrt(0.125 + 0.2401)) / 2.9208
        let w = wilson_upper(1.0, 2.0).unwrap();
        assert!((w - 0.905471345199134).abs() < 1e-12, "{w}");
        // 1 of 1 is exactly 1 (up to rounding)
        assert!((wilson_upper(1.0, 1.0).unwrap() - 1.0).abs() < 1e-12);
        // pipe can exceed 1: the proportion is capped
        assert_eq!(wilson_upper(3.0, 2.0), wilson_upper(2.0, 2.0));
        // 30 of 100: (0.3 + 0.019208 + 0.091850) / 1.038416
        assert!((wilson_upper(30.0, 100.0).unwrap() - 0.395851).abs() < 1e-5);
        assert_eq!(wilson_upper(0.0, 0.0), None);
        // 0 successes still has a positive upper bound
        assert!((wilson_upper(0.0, 10.0).unwrap() - 0.27753).abs() < 1e-4);
    }

    #[test]
    fn ratios_exported_with_denominator_only() {
        let mut t = Totals::default();
        assert_eq!(value("sales_reach_ratio", &view(&t)), None);
        t.act.outbound = 4;
        assert_eq!(value("sales_reach_ratio", &view(&t)), Some(0.0));
        t.act.meaningful = 1;
        assert_eq!(value("sales_reach_ratio", &view(&t)), Some(0.25));
        assert_eq!(value("sales_meaningful_conversations", &view(&t)), Some(1.0));
        assert_eq!(value("sales_connects", &view(&t)), None);
    }

    #[test]
    fn cost_ratios_need_spend() {
        let mut t = Totals::default();
        t.f.leads_created = 4;
        t.f.new_customers = 2;
        assert_eq!(value("sales_cost_per_lead", &view(&t)), None);
        assert_eq!(value("sales_cac", &view(&t)), None);
        t.f.spend_sales = 100.0;
        assert_eq!(value("sales_cost_per_lead", &view(&t)), None);
        assert_eq!(value("sales_cac", &view(&t)), Some(50.0));
        t.f.spend_marketing = 200.0;
        assert_eq!(value("sales_cost_per_lead", &view(&t)), Some(50.0));
        assert_eq!(value("sales_cac", &view(&t)), Some(150.0));
        t.f.new_customers = 0;
        assert_eq!(value("sales_cac", &view(&t)), None);
    }

    #[test]
    fn growth_nps_attainment() {
        let mut t = Totals::default();
        t.f.revenue = 150.0;
        let mut v = view(&t);
        assert_eq!(value("sales_growth_ratio", &v), None);
        v.prev_revenue = Some(0.0);
        assert_eq!(value("sales_growth_ratio", &v), None);
        v.prev_revenue = Some(100.0);
        assert_eq!(value("sales_growth_ratio", &v), Some(0.5));
        v.quota = Some(600.0);
        assert_eq!(value("sales_quota_attainment_ratio", &v), Some(0.25));
        let mut t = Totals::default();
        t.f.nps_responses = 4;
        t.f.nps_promoters = 1;
        t.f.nps_detractors = 2;
        assert_eq!(value("sales_nps", &view(&t)), Some(-25.0));
    }

    #[test]
    fn same_name_families_are_adjacent() {
        for (i, f) in WINDOW_FAMILIES.iter().enumerate() {
            if let Some(j) = WINDOW_FAMILIES.iter().rposition(|g| g.name == f.name) {
                assert!(WINDOW_FAMILIES[i..=j].iter().all(|g| g.name == f.name), "{} not adjacent", f.name);
            }
        }
    }
}
