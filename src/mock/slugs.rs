//! The simulated API's reports as a client sees them: which dimensions and metrics each report
//! offers (slug, description), the values a breakdown dimension takes, how each metric follows
//! from a row's additive quantities, and the currencies with their fixed rates.
//!
//! `data` computes the quantities; this file says what they are called and how they are written.

use std::fmt::Write as _;

/// Additive quantities of one cell. What each index means depends on the report (see the `C_*` and
/// `T_*` constants); unused slots stay 0.
pub(crate) type Sums = [i64; 9];

// Campaigns report quantities.
pub(crate) const C_IMPRESSIONS: usize = 0;
pub(crate) const C_REFERRALS: usize = 1;
pub(crate) const C_GROSS_COST: usize = 2;
pub(crate) const C_NET_COST: usize = 3;
pub(crate) const C_CLICK_THRU: usize = 4;
pub(crate) const C_VIEW_THRU: usize = 5;
pub(crate) const C_ACQ_CONVERSION_TIME: usize = 6;
pub(crate) const C_CONVERSIONS: usize = 7;
pub(crate) const C_CONVERSION_VALUE: usize = 8;

// Transactions report quantities.
pub(crate) const T_TRANSACTIONS: usize = 0;
pub(crate) const T_IMPRESSIONS: usize = 1;
pub(crate) const T_ENGAGEMENTS: usize = 2;
pub(crate) const T_REFERRALS: usize = 3;
pub(crate) const T_REVENUE: usize = 4;
pub(crate) const T_PLACEMENT_IMPRESSIONS: usize = 5;
pub(crate) const T_PURCHASES: usize = 6;

/// How many days of conversions stay open to restatement (the attribution window).
pub(crate) const RESTATEMENT_DAYS: i64 = 7;

/// The most dimensions one query can ask for (every dimension of the largest report).
pub(crate) const MAX_DIMS: usize = 12;

/// The reports of the Query API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Report {
    Campaigns,
    Transactions,
}

impl Report {
    /// `"campaigns"` or `"transactions"`.
    pub(crate) fn from_slug(slug: &str) -> Option<Report> {
        match slug {
            "campaigns" => Some(Report::Campaigns),
            "transactions" => Some(Report::Transactions),
            _ => None,
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Report::Campaigns => "campaigns",
            Report::Transactions => "transactions",
        }
    }

    /// The dimension slugs the Query API accepts for this report.
    pub(crate) fn dimensions(self) -> &'static [Dim] {
        match self {
            Report::Campaigns => &[
                Dim::CampaignId,
                Dim::CampaignName,
                Dim::CampaignObjective,
                Dim::CampaignCountry,
                Dim::CreativeId,
                Dim::CreativeName,
                Dim::AudienceName,
                Dim::AgeRange,
                Dim::Gender,
                Dim::Device,
            ],
            Report::Transactions => &[
                Dim::PartnerVertical,
                Dim::PartnerSubVertical,
                Dim::PageType,
                Dim::DisplayType,
            ],
        }
    }

    /// The metrics the Query API accepts for this report.
    pub(crate) fn metrics(self) -> &'static [MetricDef] {
        match self {
            Report::Campaigns => CAMPAIGN_METRICS,
            Report::Transactions => TRANSACTION_METRICS,
        }
    }

    /// The order in which breakdown dimensions split a unit (fixed, so that every query shape
    /// sees the same cells).
    pub(crate) fn chain(self) -> &'static [Dim] {
        match self {
            Report::Campaigns => &[Dim::Device, Dim::Gender, Dim::AgeRange, Dim::AudienceName],
            Report::Transactions => &[Dim::PageType, Dim::DisplayType],
        }
    }

    pub(crate) fn dimension(self, slug: &str) -> Option<Dim> {
        self.dimensions().iter().copied().find(|d| d.slug() == slug)
    }

    pub(crate) fn metric(self, slug: &str) -> Option<&'static MetricDef> {
        self.metrics().iter().find(|m| m.slug == slug)
    }
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
pub(crate) const SUB_VERTICALS: &[&str] = &[
    "Airlines",
    "Hotels",
    "Fashion",
    "Electronics",
    "Concerts",
    "Sports",
    "Banking",
    "Insurance",
];

impl Dim {
    pub(crate) fn slug(self) -> &'static str {
        match self {
            Dim::CampaignId => "campaign_id",
            Dim::CampaignName => "campaign_name",
            Dim::CampaignObjective => "campaign_objective",
            Dim::CampaignCountry => "campaign_country",
            Dim::CreativeId => "creative_id",
            Dim::CreativeName => "creative_name",
            Dim::AudienceName => "audience_name",
            Dim::AgeRange => "age_range",
            Dim::Gender => "gender",
            Dim::Device => "device",
            Dim::PartnerVertical => "partner_vertical",
            Dim::PartnerSubVertical => "partner_sub_vertical",
            Dim::PageType => "page_type",
            Dim::DisplayType => "display_type",
            Dim::PartnerSource => "partner_source",
            Dim::Brand => "brand",
            Dim::Page => "page",
            Dim::Placement => "placement",
            Dim::Position => "position",
        }
    }

    pub(crate) fn description(self) -> &'static str {
        match self {
            Dim::CampaignId => "Campaign identifier",
            Dim::CampaignName => "Campaign name",
            Dim::CampaignObjective => "Campaign objective",
            Dim::CampaignCountry => "Country the campaign targets (ISO 3166-1 alpha-2)",
            Dim::CreativeId => "Creative identifier",
            Dim::CreativeName => "Creative name",
            Dim::AudienceName => "Audience name",
            Dim::AgeRange => "Age range of the customer",
            Dim::Gender => "Gender of the customer",
            Dim::Device => "Device type",
            Dim::PartnerVertical => "Vertical of the partner",
            Dim::PartnerSubVertical => "Sub-vertical of the partner",
            Dim::PageType => "Type of the page the placement was shown on",
            Dim::DisplayType => "How the placement was displayed",
            Dim::PartnerSource => "Partner source",
            Dim::Brand => "Advertiser brand of the offer",
            Dim::Page => "Page the placement was shown on",
            Dim::Placement => "Placement",
            Dim::Position => "Position of the offer in the placement",
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
            Dim::AudienceName => Some(AUDIENCES),
            Dim::PageType => Some(PAGE_TYPES),
            Dim::DisplayType => Some(DISPLAY_TYPES),
            Dim::PartnerSource => Some(PARTNER_SOURCES),
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

/// One metric of a report: its slug and how its value follows from a row's quantities.
pub(crate) struct MetricDef {
    pub(crate) slug: &'static str,
    pub(crate) description: &'static str,
    pub(crate) value: fn(&Sums) -> Num,
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

pub(crate) const CAMPAIGN_METRICS: &[MetricDef] = &[
    MetricDef {
        slug: "impressions",
        description: "Impressions",
        value: |s| Num::Int(s[C_IMPRESSIONS]),
    },
    MetricDef {
        slug: "referrals",
        description: "Referrals (clicks through to the advertiser)",
        value: |s| Num::Int(s[C_REFERRALS]),
    },
    MetricDef {
        slug: "referral_rate",
        description: "Referrals per impression",
        value: |s| Num::Ratio(ratio(s[C_REFERRALS], s[C_IMPRESSIONS])),
    },
    MetricDef {
        slug: "gross_cost",
        description: "Gross cost in the report currency",
        value: |s| Num::Money(s[C_GROSS_COST]),
    },
    MetricDef {
        slug: "net_cost",
        description: "Net cost in the report currency",
        value: |s| Num::Money(s[C_NET_COST]),
    },
    MetricDef {
        slug: "cpr",
        description: "Gross cost per referral",
        value: |s| Num::Ratio(ratio(s[C_GROSS_COST], s[C_REFERRALS]) / 100.0),
    },
    MetricDef {
        slug: "cpa",
        description: "Gross cost per acquisition (by referral date)",
        value: |s| Num::Ratio(ratio(s[C_GROSS_COST], s[C_CLICK_THRU] + s[C_VIEW_THRU]) / 100.0),
    },
    MetricDef {
        slug: "acquisitions",
        description: "Acquisitions by referral date (restated while the attribution window is open)",
        value: |s| Num::Int(s[C_CLICK_THRU] + s[C_VIEW_THRU]),
    },
    MetricDef {
        slug: "click_thru_acquisitions",
        description: "Acquisitions after a referral",
        value: |s| Num::Int(s[C_CLICK_THRU]),
    },
    MetricDef {
        slug: "view_thru_acquisitions",
        description: "Acquisitions after an impression without a referral",
        value: |s| Num::Int(s[C_VIEW_THRU]),
    },
    MetricDef {
        slug: "acquisitions_by_conversion_time",
        description: "Acquisitions by conversion time (never restated)",
        value: |s| Num::Int(s[C_ACQ_CONVERSION_TIME]),
    },
    MetricDef {
        slug: "conversions",
        description: "Conversions by referral date",
        value: |s| Num::Int(s[C_CONVERSIONS]),
    },
    MetricDef {
        slug: "conversion_rate",
        description: "Conversions per referral",
        value: |s| Num::Ratio(ratio(s[C_CONVERSIONS], s[C_REFERRALS])),
    },
    MetricDef {
        slug: "conversion_value",
        description: "Value of the conversions in the report currency",
        value: |s| Num::Money(s[C_CONVERSION_VALUE]),
    },
    MetricDef {
        slug: "acquisition_roas",
        description: "Conversion value per unit of gross cost",
        value: |s| Num::Ratio(ratio(s[C_CONVERSION_VALUE], s[C_GROSS_COST])),
    },
    MetricDef {
        slug: "conversion_roas",
        description: "Conversion value per unit of net cost",
        value: |s| Num::Ratio(ratio(s[C_CONVERSION_VALUE], s[C_NET_COST])),
    },
    MetricDef {
        slug: "cost_per_impression",
        description: "Gross cost per impression",
        value: |s| Num::Ratio(ratio(s[C_GROSS_COST], s[C_IMPRESSIONS]) / 100.0),
    },
];

pub(crate) const TRANSACTION_METRICS: &[MetricDef] = &[
    MetricDef {
        slug: "transactions",
        description: "Transactions on the partner's pages",
        value: |s| Num::Int(s[T_TRANSACTIONS]),
    },
    MetricDef {
        slug: "impressions",
        description: "Offers shown in placements",
        value: |s| Num::Int(s[T_IMPRESSIONS]),
    },
    MetricDef {
        slug: "engagements",
        description: "Engagements with a placement",
        value: |s| Num::Int(s[T_ENGAGEMENTS]),
    },
    MetricDef {
        slug: "engagement_rate",
        description: "Engagements per impression",
        value: |s| Num::Ratio(ratio(s[T_ENGAGEMENTS], s[T_IMPRESSIONS])),
    },
    MetricDef {
        slug: "referrals",
        description: "Referrals",
        value: |s| Num::Int(s[T_REFERRALS]),
    },
    MetricDef {
        slug: "referral_rate",
        description: "Referrals per impression",
        value: |s| Num::Ratio(ratio(s[T_REFERRALS], s[T_IMPRESSIONS])),
    },
    MetricDef {
        slug: "revenue",
        description: "Partner revenue in the report currency",
        value: |s| Num::Money(s[T_REVENUE]),
    },
    MetricDef {
        slug: "revenue_per_transaction",
        description: "Partner revenue per transaction",
        value: |s| Num::Ratio(ratio(s[T_REVENUE], s[T_TRANSACTIONS]) / 100.0),
    },
    MetricDef {
        slug: "revenue_per_mille",
        description: "Partner revenue per 1,000 impressions",
        value: |s| Num::Ratio(ratio(s[T_REVENUE] * 1_000, s[T_IMPRESSIONS]) / 100.0),
    },
    MetricDef {
        slug: "placement_impressions",
        description: "Placements shown (each shows one or more offers)",
        value: |s| Num::Int(s[T_PLACEMENT_IMPRESSIONS]),
    },
    MetricDef {
        slug: "purchases",
        description: "Transactions on the partner's pages that were purchases",
        value: |s| Num::Int(s[T_PURCHASES]),
    },
];

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
