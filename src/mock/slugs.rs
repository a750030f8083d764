//! How the simulated API serves each report: the slugs are the catalogue's
//! ([`crate::catalogue`], the one list of what each report offers), and this file says what each
//! one is in the simulation: which simulated dimension a dimension slug is, the values a
//! breakdown dimension takes, how each metric follows from a row's quantities, and the
//! currencies with their fixed rates.
//!
//! `data` computes the quantities; this file says what they are called and how they are written.
//! Every catalogue slug is served (a unit test says so): a slug added to the catalogue needs a
//! line here.

use std::fmt::Write as _;
use std::sync::LazyLock;

pub(crate) use crate::catalogue::Report;

use super::distinct::{Distinct, Seen};

/// How many additive quantities a cell has.
pub(crate) const QUANTITIES: usize = 17;

/// Additive quantities of one cell. What each index means depends on the report (see the `C_*` and
/// `T_*` constants); unused slots stay 0. Every quantity is a count or an amount in cents, so a
/// row's quantities are the sums of its cells' and any grouping adds up exactly; what is not a
/// sum (a rate, an average, a distinct count) is computed from them when a row is written.
pub(crate) type Sums = [i64; QUANTITIES];

// Campaigns report quantities. Where there is a click-through part, the slot holds the whole and
// the click-through part has its own slot: the view-through part is the difference.
pub(crate) const C_IMPRESSIONS: usize = 0;
pub(crate) const C_REFERRALS: usize = 1;
pub(crate) const C_GROSS_COST: usize = 2;
pub(crate) const C_NET_COST: usize = 3;
/// Click-through acquisitions by referral date.
pub(crate) const C_CLICK_THRU: usize = 4;
/// View-through acquisitions by referral date.
pub(crate) const C_VIEW_THRU: usize = 5;
/// Acquisitions by conversion time (never restated).
pub(crate) const C_ACQ_CONVERSION_TIME: usize = 6;
/// Conversions by referral date.
pub(crate) const C_CONVERSIONS: usize = 7;
/// Value of the conversions by referral date.
pub(crate) const C_CONVERSION_VALUE: usize = 8;
pub(crate) const C_CLICK_THRU_ACQ_CONVERSION_TIME: usize = 9;
pub(crate) const C_CLICK_THRU_CONVERSIONS: usize = 10;
/// Conversions by conversion time (never restated).
pub(crate) const C_CONVERSIONS_CONVERSION_TIME: usize = 11;
pub(crate) const C_CLICK_THRU_CONVERSIONS_CONVERSION_TIME: usize = 12;
pub(crate) const C_CLICK_THRU_CONVERSION_VALUE: usize = 13;
/// Value of the acquisitions by referral date.
pub(crate) const C_ACQUISITIONS_VALUE: usize = 14;
pub(crate) const C_CLICK_THRU_ACQUISITIONS_VALUE: usize = 15;
/// Sessions that saw an impression (the legacy `uniqueSessions`).
pub(crate) const C_SESSIONS: usize = 16;

// Transactions report quantities.
pub(crate) const T_TRANSACTIONS: usize = 0;
pub(crate) const T_IMPRESSIONS: usize = 1;
/// Positive engagements with a placement (the legacy `positivePlacementEngagements`).
pub(crate) const T_ENGAGEMENTS: usize = 2;
pub(crate) const T_REFERRALS: usize = 3;
/// The partner's revenue (the legacy `revenue`).
pub(crate) const T_REVENUE: usize = 4;
/// Placements (layouts) shown: the Query API's `layout_impressions`, the legacy
/// `placementImpressions`.
pub(crate) const T_PLACEMENT_IMPRESSIONS: usize = 5;
pub(crate) const T_PURCHASES: usize = 6;
/// Transactions on pages that showed a Rokt placement (`page_transactions`).
pub(crate) const T_PAGE_TRANSACTIONS: usize = 7;

/// How many days of conversions stay open to restatement (the attribution window).
pub(crate) const RESTATEMENT_DAYS: i64 = 7;

/// The most dimensions one query can ask for (every dimension of the largest report).
pub(crate) const MAX_DIMS: usize = 12;

/// The order in which breakdown dimensions split a unit of `report` (fixed, so that every query
/// shape sees the same cells).
pub(crate) fn chain(report: Report) -> &'static [Dim] {
    match report {
        Report::Campaigns => &[Dim::Device, Dim::Gender, Dim::AgeRange, Dim::AudienceName],
        Report::Transactions => &[Dim::PageType, Dim::DisplayType],
    }
}

/// The simulated dimension of a catalogue dimension slug of `report`.
pub(crate) fn dimension(report: Report, slug: &str) -> Option<Dim> {
    report.dimension(slug).and_then(|d| Dim::from_slug(d.slug))
}

/// The metrics the simulation serves for `report`: the catalogue's, in its order.
pub(crate) fn metrics(report: Report) -> &'static [MetricDef] {
    match report {
        Report::Campaigns => &SERVED[0],
        Report::Transactions => &SERVED[1],
    }
}

/// The served metric `slug` of `report`.
pub(crate) fn metric(report: Report, slug: &str) -> Option<&'static MetricDef> {
    metrics(report).iter().find(|m| m.slug == slug)
}

/// A dimension: either an attribute of a unit (campaign, creative, vertical) or a breakdown that
/// splits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    CampaignId,
    CampaignName,
    CampaignObjective,
    CampaignCountry,
    CreativeId,
    CreativeName,
    /// The audience split, by id: the same split as [`Dim::AudienceName`].
    AudienceId,
    AudienceName,
    AgeRange,
    Gender,
    Device,
    PartnerVertical,
    PartnerSubVertical,
    PageType,
    DisplayType,
    /// Only the legacy campaign breakdowns (`groupby=partner-source`) use it.
    PartnerSource,
    /// Only the legacy campaign-level breakdown (`groupby=subvertical`) uses it: the partner
    /// sub-vertical a campaign's offers were shown in.
    Subvertical,
    /// Only the legacy transactions breakdown (`groupby=brand`) uses it: the advertiser brand of
    /// the offers shown.
    Brand,
    /// Only the legacy transactions breakdown (`groupby=page`) uses it.
    Page,
    /// Only the legacy transactions breakdown (`groupby=placement`) uses it.
    Placement,
    /// Only the legacy transactions breakdown (`groupby=position`) uses it: the offer's position
    /// in the placement.
    Position,
}

/// Every simulated dimension, for the slug lookup.
const ALL_DIMS: &[Dim] = &[
    Dim::CampaignId,
    Dim::CampaignName,
    Dim::CampaignObjective,
    Dim::CampaignCountry,
    Dim::CreativeId,
    Dim::CreativeName,
    Dim::AudienceId,
    Dim::AudienceName,
    Dim::AgeRange,
    Dim::Gender,
    Dim::Device,
    Dim::PartnerVertical,
    Dim::PartnerSubVertical,
    Dim::PageType,
    Dim::DisplayType,
    Dim::PartnerSource,
    Dim::Subvertical,
    Dim::Brand,
    Dim::Page,
    Dim::Placement,
    Dim::Position,
];

pub(crate) const DEVICES: &[(&str, u64)] = &[("mobile", 60), ("desktop", 30), ("tablet", 10)];
pub(crate) const GENDERS: &[(&str, u64)] = &[("female", 48), ("male", 44), ("unknown", 8)];
pub(crate) const AGE_RANGES: &[(&str, u64)] = &[
    ("18-24", 12),
    ("25-34", 26),
    ("35-44", 24),
    ("45-54", 18),
    ("55-64", 12),
    ("65+", 8),
];
pub(crate) const AUDIENCES: &[(&str, u64)] = &[
    ("Returning customers", 30),
    ("Lookalike \"high value\"", 25),
    ("Über-fans 🎯", 20),
    ("Prospecting; broad\tall", 25),
];
/// The ids of [`AUDIENCES`], in the same order and with the same weights (`audience_id` and
/// `audience_name` are one split seen two ways).
pub(crate) const AUDIENCE_IDS: &[(&str, u64)] = &[
    ("aud-1001", 30),
    ("aud-1002", 25),
    ("aud-1003", 20),
    ("aud-1004", 25),
];
pub(crate) const PAGE_TYPES: &[(&str, u64)] =
    &[("Confirmation", 70), ("Checkout", 20), ("Account", 10)];
pub(crate) const DISPLAY_TYPES: &[(&str, u64)] =
    &[("Overlay", 50), ("Embedded", 35), ("Lightbox", 15)];
pub(crate) const PARTNER_SOURCES: &[(&str, u64)] = &[
    ("Airline partner", 30),
    ("Ticketing partner", 25),
    ("E-commerce partner 'Shop'", 30),
    ("Food delivery 🍕", 15),
];
pub(crate) const BRANDS: &[(&str, u64)] = &[
    ("Acme \"Rockets\" Inc.", 30),
    ("Señor Café", 25),
    ("Stream; Watch & Co", 20),
    ("ブランド 🎁", 15),
    ("Back\\slash Brands", 10),
];
pub(crate) const PAGES: &[(&str, u64)] = &[
    ("/checkout/confirmation", 55),
    ("/order/thank-you?ref=email&lang=en", 25),
    ("/account/orders", 12),
    ("/checkout/payment", 8),
];
pub(crate) const PLACEMENTS: &[(&str, u64)] = &[
    ("Confirmation overlay", 55),
    ("Thank-you page embedded", 30),
    ("Account \"lightbox\"", 15),
];
pub(crate) const POSITIONS: &[(&str, u64)] = &[("1", 50), ("2", 30), ("3", 20)];
pub(crate) const OBJECTIVES: &[&str] = &["conversions", "awareness", "traffic"];
pub(crate) const COUNTRIES: &[&str] = &["US", "AU", "GB", "CA", "JP", "DE"];
pub(crate) const VERTICALS: &[&str] = &["Travel", "Retail", "Ticketing", "Finance & Insurance"];
/// The partners' sub-verticals, two per vertical in order: the transactions report's units, and
/// (with these weights) how a campaign's numbers split in the legacy `groupby=subvertical`.
pub(crate) const SUB_VERTICALS: &[(&str, u64)] = &[
    ("Airlines", 18),
    ("Hotels", 12),
    ("Fashion", 16),
    ("Electronics", 14),
    ("Concerts", 10),
    ("Sports", 10),
    ("Banking", 9),
    ("Insurance", 11),
];

impl Dim {
    /// The dimension whose slug is `slug`.
    pub(crate) fn from_slug(slug: &str) -> Option<Dim> {
        ALL_DIMS.iter().copied().find(|d| d.slug() == slug)
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Dim::CampaignId => "campaign_id",
            Dim::CampaignName => "campaign_name",
            Dim::CampaignObjective => "campaign_objective",
            Dim::CampaignCountry => "campaign_country",
            Dim::CreativeId => "creative_id",
            Dim::CreativeName => "creative_name",
            Dim::AudienceId => "audience_id",
            Dim::AudienceName => "audience_name",
            Dim::AgeRange => "age_range",
            Dim::Gender => "gender",
            Dim::Device => "device",
            Dim::PartnerVertical => "partner_vertical",
            Dim::PartnerSubVertical => "partner_sub_vertical",
            Dim::PageType => "page_type",
            Dim::DisplayType => "display_type",
            Dim::PartnerSource => "partner_source",
            Dim::Subvertical => "subvertical",
            Dim::Brand => "brand",
            Dim::Page => "page",
            Dim::Placement => "placement",
            Dim::Position => "position",
        }
    }

    /// The dimension whose level of a breakdown chain this one reads: itself, but an audience id
    /// is the audience split's level.
    pub(crate) fn split_level(self) -> Dim {
        match self {
            Dim::AudienceId => Dim::AudienceName,
            d => d,
        }
    }

    /// Whether each unit of `report` has its own value (so no two units share a row).
    pub(crate) fn unique_per_unit(self, report: Report) -> bool {
        match report {
            Report::Campaigns => matches!(self, Dim::CreativeId | Dim::CreativeName),
            Report::Transactions => self == Dim::PartnerSubVertical,
        }
    }

    /// The values of a breakdown dimension with their relative weights; `None` for attributes.
    pub(crate) fn split_values(self) -> Option<&'static [(&'static str, u64)]> {
        match self {
            Dim::Device => Some(DEVICES),
            Dim::Gender => Some(GENDERS),
            Dim::AgeRange => Some(AGE_RANGES),
            Dim::AudienceId => Some(AUDIENCE_IDS),
            Dim::AudienceName => Some(AUDIENCES),
            Dim::PageType => Some(PAGE_TYPES),
            Dim::DisplayType => Some(DISPLAY_TYPES),
            Dim::PartnerSource => Some(PARTNER_SOURCES),
            Dim::Subvertical => Some(SUB_VERTICALS),
            Dim::Brand => Some(BRANDS),
            Dim::Page => Some(PAGES),
            Dim::Placement => Some(PLACEMENTS),
            Dim::Position => Some(POSITIONS),
            _ => None,
        }
    }
}

/// A metric value as the API writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Num {
    /// A count.
    Int(i64),
    /// An amount in cents of the report currency, written with two decimals.
    Money(i64),
    /// A ratio, written with at most six decimals.
    Ratio(f64),
}

impl Num {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Money(c) => c as f64 / 100.0,
            Num::Ratio(r) => r,
        }
    }

    /// Appends the JSON number.
    pub(crate) fn write(self, out: &mut String) {
        match self {
            // itoa rather than `write!`: the formatting machinery showed in the simulated API's
            // profile, and these are most of its numbers.
            Num::Int(v) => out.push_str(itoa::Buffer::new().format(v)),
            Num::Money(c) if c >= 0 => {
                out.push_str(itoa::Buffer::new().format(c / 100));
                let cents = c % 100;
                if cents < 10 {
                    out.push('.');
                    out.push('0');
                } else {
                    out.push('.');
                }
                out.push_str(itoa::Buffer::new().format(cents));
            }
            Num::Money(c) => {
                let _ = write!(out, "{}.{:02}", c / 100, c % 100);
            }
            Num::Ratio(r) => {
                let r = if r.is_finite() { r } else { 0.0 };
                let mark = out.len();
                let _ = write!(out, "{r:.6}");
                // Trim "0.050000" to "0.05" and "3.000000" to "3": shorter, same number.
                while out.len() > mark && out.ends_with('0') {
                    out.pop();
                }
                if out.ends_with('.') {
                    out.pop();
                }
                if out.len() == mark || &out[mark..] == "-0" {
                    out.truncate(mark);
                    out.push('0');
                }
            }
        }
    }
}

/// How a metric's (or a legacy field's) value follows from a row.
#[derive(Clone, Copy)]
pub(crate) enum Value {
    /// From the row's summed quantities: a count or an amount is one of them (or a difference of
    /// two), a rate, an average or a cost per something a quotient of them (never a sum of
    /// quotients).
    Sums(fn(&Sums) -> Num),
    /// A count of the distinct things the row's cells have (see `distinct`).
    Distinct(Distinct),
}

impl Value {
    /// The value in a row with these quantities and (for a distinct count) these things.
    pub(crate) fn of(self, sums: &Sums, seen: Option<&Seen>) -> Num {
        match self {
            Value::Sums(f) => f(sums),
            Value::Distinct(kind) => Num::Int(seen.map_or(0, |s| s.count(kind))),
        }
    }
}

/// One served metric of a report: its catalogue slug and how its value follows from a row.
pub(crate) struct MetricDef {
    pub(crate) slug: &'static str,
    pub(crate) value: Value,
    /// The quantities its value reads, as a bit mask of slot numbers.
    pub(crate) reads: u32,
}

impl MetricDef {
    /// Whether its value needs the row's distinct things.
    pub(crate) fn is_distinct(&self) -> bool {
        matches!(self.value, Value::Distinct(_))
    }
}

/// `a / b`, 0 when `b` is 0.
pub(crate) fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Cents over a count: an amount per thing, in the currency's units.
pub(crate) fn per(cents: i64, count: i64) -> f64 {
    ratio(cents, count) / 100.0
}

/// The served metrics, built once from the catalogue.
static SERVED: LazyLock<[Vec<MetricDef>; 2]> = LazyLock::new(|| {
    [Report::Campaigns, Report::Transactions].map(|report| {
        report
            .metrics()
            .iter()
            .filter_map(|m| {
                let value = formula(report, m.slug)?;
                Some(MetricDef {
                    slug: m.slug,
                    value,
                    reads: reads(value),
                })
            })
            .collect()
    })
});

/// The quantities a value reads, found by changing one slot at a time (every formula is
/// arithmetic on slots, so a slot it reads changes its result for these distinct values).
fn reads(value: Value) -> u32 {
    let Value::Sums(f) = value else {
        return 0;
    };
    let base: Sums = std::array::from_fn(|i| 1_000_003 + 7_919 * i as i64);
    (0..QUANTITIES)
        .filter(|&slot| {
            let mut changed = base;
            changed[slot] += 104_729;
            f(&changed) != f(&base)
        })
        .fold(0, |mask, slot| mask | 1 << slot)
}

/// The quantities drawn last, added with issue 16's metrics: a query computes them only when
/// one of its metrics reads them (see `Query::extended`), so the common report path (the
/// benchmark's: impressions, costs, acquisitions, conversions and their ratios) costs what it
/// did before.
pub(crate) fn extended_quantities(report: Report) -> u32 {
    match report {
        Report::Campaigns => (1 << QUANTITIES) - (1 << C_CLICK_THRU_ACQ_CONVERSION_TIME),
        Report::Transactions => 1 << T_PAGE_TRANSACTIONS,
    }
}

/// How the simulation computes a catalogue metric; `None` for a slug it does not know (a unit
/// test keeps that from happening).
fn formula(report: Report, slug: &str) -> Option<Value> {
    use Num::{Int, Money, Ratio};
    let f: fn(&Sums) -> Num = match (report, slug) {
        (Report::Campaigns, slug) => match slug {
            "impressions" => |s| Int(s[C_IMPRESSIONS]),
            "referrals" => |s| Int(s[C_REFERRALS]),
            "referral_rate" => |s| Ratio(ratio(s[C_REFERRALS], s[C_IMPRESSIONS])),
            "gross_cost" => |s| Money(s[C_GROSS_COST]),
            "net_cost" => |s| Money(s[C_NET_COST]),
            "cpr" => |s| Ratio(per(s[C_GROSS_COST], s[C_REFERRALS])),
            "cpa" => |s| Ratio(per(s[C_GROSS_COST], acquisitions(s))),
            "cost_per_impression" => |s| Ratio(per(s[C_GROSS_COST], s[C_IMPRESSIONS])),
            "copi" => |s| Ratio(per(s[C_GROSS_COST] * 1_000, s[C_IMPRESSIONS])),
            "acquisitions" => |s| Int(acquisitions(s)),
            "click_thru_acquisitions" => |s| Int(s[C_CLICK_THRU]),
            "view_thru_acquisitions" => |s| Int(s[C_VIEW_THRU]),
            "acquisitions_by_conversion_time" => |s| Int(s[C_ACQ_CONVERSION_TIME]),
            "click_thru_acquisitions_by_conversion_time" => {
                |s| Int(s[C_CLICK_THRU_ACQ_CONVERSION_TIME])
            }
            "view_thru_acquisitions_by_conversion_time" => {
                |s| Int(s[C_ACQ_CONVERSION_TIME] - s[C_CLICK_THRU_ACQ_CONVERSION_TIME])
            }
            "click_thru_cpa" => |s| Ratio(per(s[C_GROSS_COST], s[C_CLICK_THRU])),
            "view_thru_cpa" => |s| Ratio(per(s[C_GROSS_COST], s[C_VIEW_THRU])),
            "conversions" => |s| Int(s[C_CONVERSIONS]),
            "click_thru_conversions" => |s| Int(s[C_CLICK_THRU_CONVERSIONS]),
            "view_thru_conversions" => |s| Int(view_thru_conversions(s)),
            "conversions_by_conversion_time" => |s| Int(s[C_CONVERSIONS_CONVERSION_TIME]),
            "click_thru_conversions_by_conversion_time" => {
                |s| Int(s[C_CLICK_THRU_CONVERSIONS_CONVERSION_TIME])
            }
            "view_thru_conversions_by_conversion_time" => |s| {
                Int(s[C_CONVERSIONS_CONVERSION_TIME] - s[C_CLICK_THRU_CONVERSIONS_CONVERSION_TIME])
            },
            "conversion_rate" => |s| Ratio(ratio(s[C_CONVERSIONS], s[C_REFERRALS])),
            "click_thru_conversion_rate" => {
                |s| Ratio(ratio(s[C_CLICK_THRU_CONVERSIONS], s[C_REFERRALS]))
            }
            "view_thru_conversion_rate" => {
                |s| Ratio(ratio(view_thru_conversions(s), s[C_IMPRESSIONS]))
            }
            "conversion_value" => |s| Money(s[C_CONVERSION_VALUE]),
            "click_thru_conversion_value" => |s| Money(s[C_CLICK_THRU_CONVERSION_VALUE]),
            "view_thru_conversion_value" => {
                |s| Money(s[C_CONVERSION_VALUE] - s[C_CLICK_THRU_CONVERSION_VALUE])
            }
            "acquisitions_value" => |s| Money(s[C_ACQUISITIONS_VALUE]),
            "click_thru_acquisition_value" => |s| Money(s[C_CLICK_THRU_ACQUISITIONS_VALUE]),
            "view_thru_acquisitions_value" => {
                |s| Money(s[C_ACQUISITIONS_VALUE] - s[C_CLICK_THRU_ACQUISITIONS_VALUE])
            }
            "acquisition_aov" => |s| Ratio(per(s[C_ACQUISITIONS_VALUE], acquisitions(s))),
            "conversion_aov" => |s| Ratio(per(s[C_CONVERSION_VALUE], s[C_CONVERSIONS])),
            "acquisition_roas" => |s| Ratio(ratio(s[C_ACQUISITIONS_VALUE], s[C_GROSS_COST])),
            "conversion_roas" => |s| Ratio(ratio(s[C_CONVERSION_VALUE], s[C_GROSS_COST])),
            "unique_campaigns" => return Some(Value::Distinct(Distinct::Campaigns)),
            "unique_creatives" => return Some(Value::Distinct(Distinct::Creatives)),
            "unique_audiences" => return Some(Value::Distinct(Distinct::Audiences)),
            "unique_campaign_countries" => {
                return Some(Value::Distinct(Distinct::CampaignCountries));
            }
            _ => return None,
        },
        (Report::Transactions, slug) => match slug {
            "transactions" => |s| Int(s[T_TRANSACTIONS]),
            "page_transactions" => |s| Int(s[T_PAGE_TRANSACTIONS]),
            "rokt_transactions_per_transaction" => {
                |s| Ratio(ratio(s[T_PAGE_TRANSACTIONS], s[T_TRANSACTIONS]))
            }
            "impressions" => |s| Int(s[T_IMPRESSIONS]),
            "layout_impressions" => |s| Int(s[T_PLACEMENT_IMPRESSIONS]),
            "referrals" => |s| Int(s[T_REFERRALS]),
            "referral_rate" => |s| Ratio(ratio(s[T_REFERRALS], s[T_IMPRESSIONS])),
            _ => return None,
        },
    };
    Some(Value::Sums(f))
}

/// Acquisitions by referral date, click- and view-through.
pub(crate) fn acquisitions(s: &Sums) -> i64 {
    s[C_CLICK_THRU] + s[C_VIEW_THRU]
}

fn view_thru_conversions(s: &Sums) -> i64 {
    s[C_CONVERSIONS] - s[C_CLICK_THRU_CONVERSIONS]
}

/// The currencies the API accepts, with a fixed rate per US dollar (in hundredths).
pub(crate) const CURRENCIES: &[(&str, i64)] = &[
    ("USD", 100),
    ("AUD", 152),
    ("CAD", 137),
    ("EUR", 92),
    ("GBP", 79),
    ("JPY", 15_000),
    ("NZD", 166),
    ("SGD", 134),
    ("KRW", 135_000),
    ("CNY", 720),
];

/// The rate (hundredths per US dollar) of a currency code, if the API knows it.
pub(crate) fn currency_rate(code: &str) -> Option<i64> {
    CURRENCIES.iter().find(|(c, _)| *c == code).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Measure;

    #[test]
    fn every_catalogue_slug_is_served() {
        for report in Report::ALL {
            for d in report.dimensions() {
                assert!(
                    dimension(report, d.slug).is_some(),
                    "{}: {}",
                    report.name(),
                    d.slug
                );
            }
            let served: Vec<&str> = metrics(report).iter().map(|m| m.slug).collect();
            let listed: Vec<&str> = report.metrics().iter().map(|m| m.slug).collect();
            assert_eq!(served, listed, "{}", report.name());
        }
    }

    #[test]
    fn metrics_know_which_quantities_they_read() {
        let m = |slug| metric(Report::Campaigns, slug).unwrap().reads;
        assert_eq!(m("impressions"), 1 << C_IMPRESSIONS);
        assert_eq!(
            m("cpa"),
            1 << C_GROSS_COST | 1 << C_CLICK_THRU | 1 << C_VIEW_THRU
        );
        assert_eq!(m("unique_campaigns"), 0);
        let extended = extended_quantities(Report::Campaigns);
        for slug in [
            "impressions",
            "gross_cost",
            "acquisitions",
            "conversion_value",
            "cpa",
        ] {
            assert_eq!(m(slug) & extended, 0, "{slug}");
        }
        for slug in [
            "acquisitions_value",
            "view_thru_conversions",
            "acquisition_aov",
        ] {
            assert_ne!(m(slug) & extended, 0, "{slug}");
        }
        let t = |slug| metric(Report::Transactions, slug).unwrap().reads;
        assert_eq!(
            t("page_transactions"),
            extended_quantities(Report::Transactions)
        );
    }

    #[test]
    fn each_metric_is_computed_as_its_measure_says() {
        // Quantities where every part is smaller than its whole, as the simulation makes them.
        let mut s: Sums = [0; QUANTITIES];
        for (i, v) in s.iter_mut().enumerate() {
            *v = 1_000 + 10 * i as i64;
        }
        s[C_CLICK_THRU_ACQ_CONVERSION_TIME] = 500;
        s[C_CLICK_THRU_CONVERSIONS] = 500;
        s[C_CLICK_THRU_CONVERSIONS_CONVERSION_TIME] = 500;
        s[C_CLICK_THRU_CONVERSION_VALUE] = 500;
        s[C_CLICK_THRU_ACQUISITIONS_VALUE] = 500;
        for report in Report::ALL {
            for m in report.metrics() {
                let served = metric(report, m.slug).unwrap();
                let kind = match served.value {
                    Value::Distinct(_) => Measure::Distinct,
                    Value::Sums(f) => match f(&s) {
                        Num::Int(v) => {
                            assert!(v >= 0, "{}", m.slug);
                            Measure::Count
                        }
                        Num::Money(v) => {
                            assert!(v >= 0, "{}", m.slug);
                            Measure::Money
                        }
                        Num::Ratio(_) => Measure::Ratio,
                    },
                };
                assert_eq!(kind, m.measure, "{}: {}", report.name(), m.slug);
            }
        }
    }
}
