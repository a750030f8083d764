//! What the Query API's slugs mean, as Rokt's pages and the clients that read the live API use
//! them (see `shared/design/rokt-api.md`): each report's dimensions (and which of them only
//! *describe* another: a name beside its id) and metrics (and whether a total over days or rows is
//! their sum).
//!
//! The one place that knows this. The table key of a Query API job is its grain (`grain`), `verify`
//! compares only additive metrics, `discover` separates ids from names, and the simulated API
//! offers these slugs. A slug missing here is still allowed in a job (what an account offers varies
//! and Rokt adds slugs): an unknown dimension counts as grain, an unknown metric as not additive.

/// A Query API report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Report {
    Campaigns,
    Transactions,
}

impl Report {
    pub const NAMES: &'static [&'static str] = &["campaigns", "transactions"];
    pub const ALL: [Report; 2] = [Report::Campaigns, Report::Transactions];

    pub fn parse(s: &str) -> Option<Report> {
        match s {
            "campaigns" => Some(Report::Campaigns),
            "transactions" => Some(Report::Transactions),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Report::Campaigns => "campaigns",
            Report::Transactions => "transactions",
        }
    }

    /// The path after `/v1/query/accounts/{account_id}` (the campaigns report needs its trailing slash).
    pub fn path_suffix(self) -> &'static str {
        match self {
            Report::Campaigns => "/campaigns/",
            Report::Transactions => "/transactions",
        }
    }

    /// The dimensions real clients use with this report.
    pub fn dimensions(self) -> &'static [Dimension] {
        match self {
            Report::Campaigns => CAMPAIGN_DIMENSIONS,
            Report::Transactions => TRANSACTION_DIMENSIONS,
        }
    }

    /// The metrics real clients use with this report.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Report::Campaigns => CAMPAIGN_METRICS,
            Report::Transactions => TRANSACTION_METRICS,
        }
    }

    pub fn dimension(self, slug: &str) -> Option<&'static Dimension> {
        self.dimensions().iter().find(|d| d.slug == slug)
    }

    pub fn metric(self, slug: &str) -> Option<&'static Metric> {
        self.metrics().iter().find(|m| m.slug == slug)
    }

    /// The grain of a job that asks for `dimensions`: each dimension, but those that only
    /// describe another dimension the job also asks for (`campaign_name` beside `campaign_id`),
    /// in the job's order. A name without its id stays: it is all there is to tell rows apart.
    pub fn grain(self, dimensions: &[String]) -> Vec<&str> {
        dimensions
            .iter()
            .map(String::as_str)
            .filter(|d| {
                !self
                    .dimension(d)
                    .and_then(|dim| dim.describes)
                    .is_some_and(|id| dimensions.iter().any(|x| x == id))
            })
            .collect()
    }
}

/// A dimension slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimension {
    pub slug: &'static str,
    pub description: &'static str,
    /// The id this dimension only describes (a name, an objective): beside that id it is an
    /// ordinary column whose last value wins, never part of a row's identity, because a live report
    /// shows the current name for every day, past days included.
    pub describes: Option<&'static str>,
}

/// How a metric's values combine over days or rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// A count of events: the total is the sum.
    Count,
    /// An amount of money in the report's currency: the total is the sum.
    Money,
    /// A rate, a ratio, a cost per something or an average: computed from its parts, never summed.
    Ratio,
    /// A count of distinct things (`unique_*`): the same campaign on two days counts once.
    Distinct,
}

/// A metric slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub slug: &'static str,
    pub description: &'static str,
    pub measure: Measure,
}

impl Metric {
    /// True when a total over days (or over finer rows) is the sum of the parts: counts and money.
    pub fn is_additive(&self) -> bool {
        matches!(self.measure, Measure::Count | Measure::Money)
    }
}

/// Whether `slug` of `report` is additive; an unknown slug is not (it is never compared).
pub fn is_additive(report: Report, slug: &str) -> bool {
    report.metric(slug).is_some_and(Metric::is_additive)
}

const fn dim(slug: &'static str, description: &'static str) -> Dimension {
    Dimension {
        slug,
        description,
        describes: None,
    }
}

const fn describes(slug: &'static str, id: &'static str, description: &'static str) -> Dimension {
    Dimension {
        slug,
        description,
        describes: Some(id),
    }
}

const fn count(slug: &'static str, description: &'static str) -> Metric {
    Metric {
        slug,
        description,
        measure: Measure::Count,
    }
}

const fn money(slug: &'static str, description: &'static str) -> Metric {
    Metric {
        slug,
        description,
        measure: Measure::Money,
    }
}

const fn ratio(slug: &'static str, description: &'static str) -> Metric {
    Metric {
        slug,
        description,
        measure: Measure::Ratio,
    }
}

const fn distinct(slug: &'static str, description: &'static str) -> Metric {
    Metric {
        slug,
        description,
        measure: Measure::Distinct,
    }
}

const CAMPAIGN_DIMENSIONS: &[Dimension] = &[
    dim("campaign_id", "The campaign's id"),
    describes(
        "campaign_name",
        "campaign_id",
        "The campaign's current name",
    ),
    describes(
        "campaign_objective",
        "campaign_id",
        "The campaign's objective (conversions, awareness, traffic)",
    ),
    dim("campaign_country", "A country the campaign runs in"),
    dim("creative_id", "The creative's id"),
    describes(
        "creative_name",
        "creative_id",
        "The creative's current name",
    ),
    // Not on rokt-api.md's list of slugs seen (only `audience_name` is): named here so that an
    // audience's name beside its id is described, never a second grain, should the id appear.
    dim("audience_id", "The audience's id"),
    describes(
        "audience_name",
        "audience_id",
        "The audience's current name",
    ),
    dim("age_range", "The customer's age range"),
    dim("gender", "The customer's gender"),
    dim("device", "The customer's device type"),
];

const TRANSACTION_DIMENSIONS: &[Dimension] = &[
    dim("partner_vertical", "The partner's vertical"),
    dim("partner_sub_vertical", "The partner's sub-vertical"),
    dim("page_type", "The type of page the placement was on"),
    dim("display_type", "How the placement was displayed"),
];

const CAMPAIGN_METRICS: &[Metric] = &[
    count("impressions", "Impressions"),
    count("referrals", "Referrals (clicks through to the advertiser)"),
    ratio("referral_rate", "Referrals per impression"),
    money("gross_cost", "Gross cost"),
    money("net_cost", "Net cost"),
    ratio("cpr", "Cost per referral"),
    ratio("cpa", "Cost per acquisition"),
    ratio("cost_per_impression", "Cost per impression"),
    ratio("copi", "Cost per 1,000 impressions"),
    count(
        "acquisitions",
        "Acquisitions, by referral date (restated for days)",
    ),
    count("click_thru_acquisitions", "Click-through acquisitions"),
    count("view_thru_acquisitions", "View-through acquisitions"),
    count(
        "acquisitions_by_conversion_time",
        "Acquisitions, by conversion time",
    ),
    count(
        "click_thru_acquisitions_by_conversion_time",
        "Click-through acquisitions, by conversion time",
    ),
    count(
        "view_thru_acquisitions_by_conversion_time",
        "View-through acquisitions, by conversion time",
    ),
    ratio("click_thru_cpa", "Cost per click-through acquisition"),
    ratio("view_thru_cpa", "Cost per view-through acquisition"),
    count("conversions", "Conversions, by referral date"),
    count("click_thru_conversions", "Click-through conversions"),
    count("view_thru_conversions", "View-through conversions"),
    count(
        "conversions_by_conversion_time",
        "Conversions, by conversion time",
    ),
    count(
        "click_thru_conversions_by_conversion_time",
        "Click-through conversions, by conversion time",
    ),
    count(
        "view_thru_conversions_by_conversion_time",
        "View-through conversions, by conversion time",
    ),
    ratio("conversion_rate", "Conversions per referral"),
    ratio(
        "click_thru_conversion_rate",
        "Click-through conversions per referral",
    ),
    ratio(
        "view_thru_conversion_rate",
        "View-through conversions per impression",
    ),
    money("conversion_value", "Value of the conversions"),
    money(
        "click_thru_conversion_value",
        "Value of the click-through conversions",
    ),
    money(
        "view_thru_conversion_value",
        "Value of the view-through conversions",
    ),
    money("acquisitions_value", "Value of the acquisitions"),
    money(
        "click_thru_acquisition_value",
        "Value of the click-through acquisitions",
    ),
    money(
        "view_thru_acquisitions_value",
        "Value of the view-through acquisitions",
    ),
    ratio("acquisition_aov", "Average value of an acquisition"),
    ratio("conversion_aov", "Average value of a conversion"),
    ratio("acquisition_roas", "Acquisition value per unit of cost"),
    ratio("conversion_roas", "Conversion value per unit of cost"),
    distinct("unique_campaigns", "Distinct campaigns"),
    distinct("unique_creatives", "Distinct creatives"),
    distinct("unique_audiences", "Distinct audiences"),
    distinct("unique_campaign_countries", "Distinct campaign countries"),
];

const TRANSACTION_METRICS: &[Metric] = &[
    count("transactions", "Transactions on the partner's pages"),
    count(
        "page_transactions",
        "Transactions on pages that showed a Rokt placement",
    ),
    ratio(
        "rokt_transactions_per_transaction",
        "Transactions with a Rokt placement per transaction",
    ),
    count("impressions", "Impressions"),
    count("layout_impressions", "Placement layouts shown"),
    count("referrals", "Referrals"),
    ratio("referral_rate", "Referrals per impression"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn a_name_beside_its_id_is_not_grain() {
        let dims = strings(&[
            "campaign_id",
            "campaign_name",
            "creative_id",
            "creative_name",
        ]);
        assert_eq!(
            Report::Campaigns.grain(&dims),
            ["campaign_id", "creative_id"]
        );
        let objective = strings(&["campaign_objective", "campaign_id", "device"]);
        assert_eq!(
            Report::Campaigns.grain(&objective),
            ["campaign_id", "device"]
        );
    }

    #[test]
    fn a_name_without_its_id_and_unknown_slugs_stay_grain() {
        let dims = strings(&["campaign_name", "audience_name", "brand_new_slug"]);
        assert_eq!(
            Report::Campaigns.grain(&dims),
            ["campaign_name", "audience_name", "brand_new_slug"]
        );
    }

    #[test]
    fn what_a_described_dimension_points_at_is_a_dimension_of_the_same_report() {
        for report in Report::ALL {
            for d in report.dimensions() {
                if let Some(id) = d.describes {
                    assert!(report.dimension(id).is_some(), "{}: {id}", d.slug);
                }
            }
        }
    }

    #[test]
    fn only_counts_and_money_are_additive() {
        assert!(is_additive(Report::Campaigns, "gross_cost"));
        assert!(is_additive(Report::Campaigns, "acquisitions"));
        assert!(!is_additive(Report::Campaigns, "referral_rate"));
        assert!(!is_additive(Report::Campaigns, "cpa"));
        assert!(!is_additive(Report::Campaigns, "unique_creatives"));
        assert!(!is_additive(Report::Campaigns, "acquisition_aov"));
        assert!(!is_additive(Report::Campaigns, "not_a_slug"));
        assert!(is_additive(Report::Transactions, "transactions"));
        assert!(!is_additive(
            Report::Transactions,
            "rokt_transactions_per_transaction"
        ));
    }

    #[test]
    fn slugs_are_unique_within_a_report() {
        for report in Report::ALL {
            let mut seen = std::collections::HashSet::new();
            for slug in report
                .dimensions()
                .iter()
                .map(|d| d.slug)
                .chain(report.metrics().iter().map(|m| m.slug))
            {
                assert!(seen.insert(slug), "{} twice in {}", slug, report.name());
            }
        }
    }
}
