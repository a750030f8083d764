//! The simulated API's data: a deterministic catalog (accounts, campaigns, creatives) and the numbers
//! of every report cell, computed on demand from a seeded hash.
//!
//! The model, chosen so that every consistency a loader test may check holds exactly:
//! - The finest unit is one creative (campaigns report) or one partner sub-vertical (transactions
//!   report) on one day. Its additive quantities (counts, money in cents) come from a hash of
//!   (seed, account, unit, day); nothing depends on the wall clock.
//! - Breakdown dimensions (device, gender, age range, audience; page and display type) split a unit's
//!   quantities along a fixed chain with an exact integer split (the parts always sum to the whole),
//!   so a campaign row is the sum of its creative rows, a total over a range is the sum of its daily
//!   rows, and any coarser grouping is the sum of a finer one.
//! - Ratios (rates, cost per X, ROAS, averages) are computed from the summed quantities of a row,
//!   never summed; distinct counts (`unique_*`) from the things a row's cells have (`distinct`).
//! - Restatement: conversion quantities of a day are its final value times `(age + 1) / 8`, where
//!   `age = today - day` clamped to `0..=7`. Days older than 7 days never change; a day 7 days old
//!   already holds its final value, so it does not change when it leaves the lookback window either.
//! - Money is converted to the requested currency at fixed rates, per unit and day, before splitting.
//! - Report days are days of the requested time zone, and a day's numbers depend on the zone's UTC
//!   offset that day (a day in Sydney is not a day in New York): the offset is mixed into the
//!   day's seed, except at offset zero, so UTC reports keep the numbers they always had. Reports in
//!   zones with the same offset agree.
//! - Campaigns can be renamed (a report then shows the new name on every day, past days included,
//!   as the live API does) and a creative's rows can be invalidated from a day on (they vanish
//!   from every report and total), through the admin API.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};

use super::distinct::{Cell, Seen};
use super::slugs::*;
pub(crate) use super::slugs::{Dim, MetricDef, Report, Sums, currency_rate};

/// One account the credentials can read, with its campaigns and creatives.
#[derive(Clone)]
pub(crate) struct Account {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) country: &'static str,
    pub(crate) currency: &'static str,
    pub(crate) timezone: &'static str,
    /// `accountOwner`: an e-mail address.
    pub(crate) owner: String,
    /// Campaigns-report slugs this account does not have.
    lacks: &'static [&'static str],
    hash: u64,
    campaigns: Vec<Campaign>,
    creatives: Vec<Creative>,
}

impl Account {
    /// Whether the account has this dimension or metric of a report: `help` lists it and a
    /// report may ask for it.
    pub(crate) fn offers(&self, report: Report, slug: &str) -> bool {
        report != Report::Campaigns || !self.lacks.contains(&slug)
    }

    /// The index of the account's campaign with this id (the legacy campaign-level endpoints).
    pub(crate) fn campaign_index(&self, campaign_id: &str) -> Option<u32> {
        self.campaigns
            .iter()
            .position(|c| c.id == campaign_id)
            .and_then(|i| u32::try_from(i).ok())
    }
}

#[derive(Clone)]
struct Campaign {
    id: String,
    name: String,
    objective: u32,
    country: u32,
}

#[derive(Clone)]
struct Creative {
    id: String,
    name: String,
    campaign: u32,
    /// Its rows from this day on are invalidated: no report has them.
    invalid_from: Option<NaiveDate>,
}

const ACCOUNT_NAMES: &[&str] = &[
    "Pi Retail \"Outlet\"; Café 日本語 🛒",
    "E's Travel\tCo 🌏",
    "Tau Ticketing <b>&amp;</b>",
];
/// Country, currency and time zone of an account, and the campaigns-report slugs it does not have
/// (what is available varies by account; its `help` lists the rest). Accounts take the profiles in
/// turn, so the default accounts are a US and an AU one.
const ACCOUNT_PROFILES: &[(&str, &str, &str, &[&str])] = &[
    ("US", "USD", "America/New_York", &[]),
    (
        "AU",
        "AUD",
        "Australia/Sydney",
        &["cost_per_impression", "conversion_roas"],
    ),
    (
        "GB",
        "GBP",
        "Europe/London",
        &["campaign_objective", "cost_per_impression"],
    ),
];
/// Campaign names that stress a loader: quotes of both kinds, a semicolon, a tab, a backslash,
/// non-ASCII letters and emoji. A number keeps each name unique.
const CAMPAIGN_NAMES: &[&str] = &[
    "Spring \"Mega\" Sale 🚀",
    "O'Brien's Picks; Autumn",
    "Tab\tSeparated Offer",
    "Café Crème Été — 日本語キャンペーン",
    "Back\\slash \"and\" 'both' 🎉",
    "Plain Campaign",
    "Rocket 🚀 Launch",
    "日本語キャンペーン",
];

/// Everything the simulation serves, built from the configuration and changed only through the
/// admin API (renames, invalidations): a change makes a new catalog.
#[derive(Clone)]
pub(crate) struct Catalog {
    seed: u64,
    accounts: Vec<Account>,
}

impl Catalog {
    pub(crate) fn new(
        seed: u64,
        account_ids: &[String],
        campaigns_per_account: u32,
        creatives_per_campaign: u32,
    ) -> Catalog {
        let accounts = account_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let hash = hash_str(id);
                let (country, currency, timezone, lacks) =
                    ACCOUNT_PROFILES[i % ACCOUNT_PROFILES.len()];
                let name = match ACCOUNT_NAMES.get(i) {
                    Some(n) => (*n).to_owned(),
                    None => format!("Account {id} 'extra'"),
                };
                let mut campaigns = Vec::new();
                let mut creatives = Vec::new();
                for c in 0..campaigns_per_account {
                    let h = mix(seed ^ hash, u64::from(c) + 1);
                    let base = CAMPAIGN_NAMES[c as usize % CAMPAIGN_NAMES.len()];
                    let campaign_name = format!("{base} #{}", c + 1);
                    // Unique across accounts too, as Rokt's ids are.
                    let campaign_id =
                        (7_000_000_000 + i as u64 * 1_000_000 + 1_000 + u64::from(c)).to_string();
                    for k in 0..creatives_per_campaign {
                        creatives.push(Creative {
                            id: format!("{campaign_id}{:03}", k + 1),
                            name: format!("{campaign_name} / Créative {}", k + 1),
                            campaign: c,
                            invalid_from: None,
                        });
                    }
                    campaigns.push(Campaign {
                        id: campaign_id,
                        name: campaign_name,
                        objective: (h % OBJECTIVES.len() as u64) as u32,
                        country: ((h >> 16) % COUNTRIES.len() as u64) as u32,
                    });
                }
                Account {
                    id: id.clone(),
                    name,
                    country,
                    currency,
                    timezone,
                    owner: format!("ads.{}@example.com", id.to_ascii_lowercase()),
                    lacks,
                    hash,
                    campaigns,
                    creatives,
                }
            })
            .collect();
        Catalog { seed, accounts }
    }

    pub(crate) fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    pub(crate) fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// Gives a campaign a new name (every report, past days included, shows it). False when the
    /// account or campaign is unknown.
    pub(crate) fn rename_campaign(&mut self, account: &str, campaign: &str, name: &str) -> bool {
        let found = self
            .accounts
            .iter_mut()
            .find(|a| a.id == account)
            .and_then(|a| a.campaigns.iter_mut().find(|c| c.id == campaign));
        match found {
            Some(c) => {
                c.name = name.to_owned();
                true
            }
            None => false,
        }
    }

    /// Invalidates a creative's rows from `from` on: they vanish from every report and total.
    /// False when the account or creative is unknown.
    pub(crate) fn invalidate_creative(
        &mut self,
        account: &str,
        creative: &str,
        from: NaiveDate,
    ) -> bool {
        let found = self
            .accounts
            .iter_mut()
            .find(|a| a.id == account)
            .and_then(|a| a.creatives.iter_mut().find(|c| c.id == creative));
        match found {
            Some(c) => {
                c.invalid_from = Some(from);
                true
            }
            None => false,
        }
    }

    /// The ids of an account's creatives, in order (for tests and the admin API's messages).
    pub(crate) fn creative_ids(&self, account: &str) -> Vec<String> {
        self.account(account)
            .map(|a| a.creatives.iter().map(|c| c.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The ids of an account's campaigns, in order.
    pub(crate) fn campaign_ids(&self, account: &str) -> Vec<String> {
        self.account(account)
            .map(|a| a.campaigns.iter().map(|c| c.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Runs a query: one group per (day when `interval`) and combination of `query.dims`, in a
    /// stable order (day, then unit, then breakdown order), or sorted by `query.order_by`.
    pub(crate) fn run(&self, account: &Account, query: &Query, today: NaiveDate) -> Vec<Group> {
        let report = query.report;
        let chain = query.chain.unwrap_or_else(|| super::slugs::chain(report));
        let unit_count = match report {
            Report::Campaigns => account.creatives.len(),
            Report::Transactions => SUB_VERTICALS.len(),
        };
        // Where each requested dimension's value comes from: the unit, or a level of the chain.
        let source = |d: Dim| match chain.iter().position(|c| *c == d.split_level()) {
            Some(level) => Source::Split(level),
            None => Source::Attr(d),
        };
        let dim_sources: Vec<Source> = query.dims.iter().map(|d| source(*d)).collect();
        let filters: Vec<(Source, Dim, Vec<String>)> = query
            .filters
            .iter()
            .map(|(d, values)| (source(*d), *d, values.clone()))
            .collect();
        let depth = dim_sources
            .iter()
            .chain(filters.iter().map(|(s, _, _)| s))
            .filter_map(|s| match s {
                Source::Split(level) => Some(level + 1),
                Source::Attr(_) => None,
            })
            .max()
            .unwrap_or(0);

        // Per unit: the attribute part of the key, and whether attribute filters let it through.
        let mut unit_keys = Vec::with_capacity(unit_count);
        for unit in 0..unit_count {
            let mut key = [0u32; MAX_DIMS];
            for (i, s) in dim_sources.iter().enumerate() {
                if let Source::Attr(d) = s {
                    key[i] = self.attr_index(account, report, unit, *d);
                }
            }
            let passes = filters.iter().all(|(s, _, allowed)| match s {
                Source::Attr(d) => {
                    let idx = self.attr_index(account, report, unit, *d);
                    allowed
                        .iter()
                        .any(|v| v == self.attr_value(account, *d, idx))
                }
                Source::Split(_) => true,
            });
            unit_keys.push(passes.then_some(key));
        }
        // Breakdown filters as allowed value indices per chain level.
        let mut split_allowed: Vec<Option<Vec<bool>>> = vec![None; chain.len()];
        for (s, dim, allowed) in &filters {
            if let Source::Split(level) = s {
                let values = dim.split_values().unwrap_or(&[]);
                let mask = values
                    .iter()
                    .map(|(name, _)| allowed.iter().any(|a| a == name))
                    .collect::<Vec<_>>();
                split_allowed[*level] = Some(match split_allowed[*level].take() {
                    Some(prev) => prev.iter().zip(&mask).map(|(a, b)| *a && *b).collect(),
                    None => mask,
                });
            }
        }

        // When every cell is its own row (a per-unit attribute such as creative_id is asked for,
        // with every breakdown level down to `depth`, one day per row), skip the grouping map:
        // it is most of the cost of the large creative-level windows benchmarks ask for.
        let unit_unique = dim_sources.iter().any(|s| match s {
            Source::Attr(d) => d.unique_per_unit(report),
            Source::Split(_) => false,
        });
        let all_levels = (0..depth).all(|level| {
            dim_sources
                .iter()
                .any(|s| matches!(s, Source::Split(l) if *l == level))
        });
        let one_day = query.start.succ_opt() == Some(query.end_exclusive);
        let mut acc = Accumulator {
            direct: unit_unique && all_levels && (query.interval || one_day),
            ..Accumulator::default()
        };
        // Distinct counts (see `distinct`): what each unit's cells have, and where the audience
        // split is (a cell not split by audience reached every audience).
        let distinct = query.distinct && report == Report::Campaigns;
        let audience_level = chain.iter().position(|d| *d == Dim::AudienceName);
        let every_audience = (1u64 << AUDIENCES.len()) - 1;
        let unit_cells: Vec<Cell> = if distinct {
            (0..unit_count)
                .map(|unit| Cell {
                    campaign: self.attr_index(account, report, unit, Dim::CampaignId),
                    creative: unit as u32,
                    country: self.attr_index(account, report, unit, Dim::CampaignCountry),
                    audiences: every_audience,
                })
                .collect()
        } else {
            Vec::new()
        };
        let last = today.min(
            query
                .end_exclusive
                .pred_opt()
                .unwrap_or(query.end_exclusive),
        );
        let mut day = query.start;
        while day <= last && day < query.end_exclusive {
            let slot = if query.interval { Some(day) } else { None };
            let day_key = day_number(day) ^ zone_salt(query.zone.unwrap_or(chrono_tz::UTC), day);
            for (unit, key) in unit_keys.iter().enumerate() {
                let Some(key) = key else { continue };
                if report == Report::Campaigns
                    && account
                        .creatives
                        .get(unit)
                        .and_then(|c| c.invalid_from)
                        .is_some_and(|from| day >= from)
                {
                    continue;
                }
                let rate = query.currency_rate.unwrap_or(100);
                let sums = self.base(
                    account,
                    report,
                    (unit, day, day_key),
                    today,
                    rate,
                    query.extended,
                );
                let h = mix3(self.seed ^ account.hash, unit as u64 + 1, day_key);
                let mut path = [0u32; 8];
                walk(
                    chain,
                    0,
                    depth,
                    h,
                    &sums,
                    &mut path,
                    &mut |path: &[u32], sums: &Sums| {
                        for (level, allowed) in split_allowed.iter().enumerate() {
                            if let Some(allowed) = allowed
                                && level < path.len()
                                && !allowed.get(path[level] as usize).copied().unwrap_or(false)
                            {
                                return;
                            }
                        }
                        let mut key = *key;
                        for (i, s) in dim_sources.iter().enumerate() {
                            if let Source::Split(level) = s {
                                key[i] = path[*level];
                            }
                        }
                        let cell = unit_cells
                            .get(unit)
                            .filter(|_| sums[C_IMPRESSIONS] > 0)
                            .map(|cell| Cell {
                                audiences: match audience_level {
                                    Some(level) if level < path.len() => 1u64 << path[level],
                                    _ => cell.audiences,
                                },
                                ..*cell
                            });
                        acc.add(slot, key, sums, distinct, cell.as_ref());
                    },
                );
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        let mut groups = acc.groups;
        if !query.order_by.is_empty() {
            groups.sort_by(|a, b| {
                for (column, descending) in &query.order_by {
                    let ord = match column {
                        Column::Dim(i) => self
                            .dim_value(account, query, *i, a)
                            .cmp(self.dim_value(account, query, *i, b)),
                        Column::Metric(m) => m
                            .value
                            .of(&a.sums, a.seen.as_deref())
                            .as_f64()
                            .total_cmp(&m.value.of(&b.sums, b.seen.as_deref()).as_f64()),
                    };
                    let ord = if *descending { ord.reverse() } else { ord };
                    if ord.is_ne() {
                        return ord;
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        groups
    }

    /// The text of the `i`-th requested dimension of a group.
    pub(crate) fn dim_value<'a>(
        &'a self,
        account: &'a Account,
        query: &Query,
        i: usize,
        group: &Group,
    ) -> &'a str {
        let dim = query.dims[i];
        let idx = group.key[i];
        match dim.split_values() {
            Some(values) => values.get(idx as usize).map(|(n, _)| *n).unwrap_or(""),
            None => self.attr_value(account, dim, idx),
        }
    }

    /// The value index of an attribute dimension for one unit.
    fn attr_index(&self, account: &Account, report: Report, unit: usize, dim: Dim) -> u32 {
        let creative = account.creatives.get(unit);
        let campaign = creative.and_then(|c| account.campaigns.get(c.campaign as usize));
        match (report, dim) {
            (Report::Campaigns, Dim::CampaignId | Dim::CampaignName) => {
                creative.map(|c| c.campaign).unwrap_or(0)
            }
            (Report::Campaigns, Dim::CampaignObjective) => {
                campaign.map(|c| c.objective).unwrap_or(0)
            }
            (Report::Campaigns, Dim::CampaignCountry) => campaign.map(|c| c.country).unwrap_or(0),
            (Report::Transactions, Dim::PartnerVertical) => (unit / 2) as u32,
            _ => unit as u32,
        }
    }

    /// The text of an attribute dimension's value index (a legacy item's `creativeName`).
    pub(crate) fn attr_text<'a>(&'a self, account: &'a Account, dim: Dim, idx: u32) -> &'a str {
        self.attr_value(account, dim, idx)
    }

    /// The text of an attribute dimension's value index.
    fn attr_value<'a>(&'a self, account: &'a Account, dim: Dim, idx: u32) -> &'a str {
        let idx = idx as usize;
        let text = match dim {
            Dim::CampaignId => account.campaigns.get(idx).map(|c| c.id.as_str()),
            Dim::CampaignName => account.campaigns.get(idx).map(|c| c.name.as_str()),
            Dim::CreativeId => account.creatives.get(idx).map(|c| c.id.as_str()),
            Dim::CreativeName => account.creatives.get(idx).map(|c| c.name.as_str()),
            Dim::CampaignObjective => OBJECTIVES.get(idx).copied(),
            Dim::CampaignCountry => COUNTRIES.get(idx).copied(),
            Dim::PartnerVertical => VERTICALS.get(idx).copied(),
            Dim::PartnerSubVertical => SUB_VERTICALS.get(idx).map(|(name, _)| *name),
            _ => None,
        };
        text.unwrap_or("")
    }

    /// The name of a campaign by its value index (the legacy breakdown's `campaignName`).
    pub(crate) fn campaign_name<'a>(&self, account: &'a Account, idx: u32) -> &'a str {
        account
            .campaigns
            .get(idx as usize)
            .map(|c| c.name.as_str())
            .unwrap_or("")
    }

    /// The quantities of one unit on one day (its seed mixes in `day_key`), restated as seen
    /// from `today`, in the currency whose rate is `currency_rate` (hundredths per US dollar);
    /// the [`extended_quantities`] only when `extended` (else 0: no metric asked reads them).
    fn base(
        &self,
        account: &Account,
        report: Report,
        (unit, day, day_key): (usize, NaiveDate, u64),
        today: NaiveDate,
        currency_rate: i64,
        extended: bool,
    ) -> Sums {
        let h = mix3(
            self.seed ^ account.hash ^ (report as u64) << 40,
            unit as u64 + 1,
            day_key,
        );
        let r = |i: u64| mix(h, i);
        // Weekends are quieter, as they are for most advertisers.
        let weekday =
            [100, 105, 110, 108, 102, 80, 75][day.weekday().num_days_from_monday() as usize];
        let convert = |cents: i64| cents * currency_rate / 100;
        let mut s = [0i64; QUANTITIES];
        match report {
            Report::Campaigns => {
                let impressions = (2_000 + (r(1) % 8_000) as i64) * weekday / 100;
                let referrals = impressions * (20 + (r(2) % 60) as i64) / 1_000;
                let gross = referrals * (80 + (r(3) % 220) as i64);
                let click_thru = 8 + referrals * (5 + (r(4) % 10) as i64) / 100;
                let view_thru = impressions * (1 + (r(5) % 4) as i64) / 1_000;
                let conversions = click_thru + view_thru + (r(7) % 10) as i64;
                let order_value = 2_000 + (r(8) % 13_000) as i64;
                // Conversions by referral date keep arriving for RESTATEMENT_DAYS days.
                let age = (today - day).num_days().clamp(0, RESTATEMENT_DAYS);
                let matured = |v: i64| v * (age + 1) / (RESTATEMENT_DAYS + 1);
                s[C_IMPRESSIONS] = impressions;
                s[C_REFERRALS] = referrals;
                s[C_GROSS_COST] = convert(gross);
                s[C_NET_COST] = convert(gross * 85 / 100);
                s[C_CLICK_THRU] = matured(click_thru);
                s[C_VIEW_THRU] = matured(view_thru);
                s[C_ACQ_CONVERSION_TIME] =
                    (click_thru + view_thru) * (90 + (r(6) % 21) as i64) / 100;
                s[C_CONVERSIONS] = matured(conversions);
                s[C_CONVERSION_VALUE] = convert(matured(conversions * order_value));
                if !extended {
                    return s;
                }
                // Drawn after the others, so adding them left every older number as it was.
                // Each click-through part is at most its whole (the view-through part is the
                // difference); view-through conversions are the view-through acquisitions.
                let acq_time = 90 + (r(6) % 21) as i64;
                let click_conversions = conversions - view_thru;
                let conversion_time = 92 + (r(9) % 17) as i64;
                // A new customer's first order is larger than a returning one's.
                let acquisition_value = order_value * (100 + (r(10) % 60) as i64) / 100;
                s[C_CLICK_THRU_ACQ_CONVERSION_TIME] = click_thru * acq_time / 100;
                s[C_CLICK_THRU_CONVERSIONS] = matured(click_conversions);
                s[C_CONVERSIONS_CONVERSION_TIME] = conversions * conversion_time / 100;
                s[C_CLICK_THRU_CONVERSIONS_CONVERSION_TIME] =
                    click_conversions * conversion_time / 100;
                s[C_CLICK_THRU_CONVERSION_VALUE] =
                    convert(matured(click_conversions * order_value));
                s[C_ACQUISITIONS_VALUE] =
                    convert(matured((click_thru + view_thru) * acquisition_value));
                s[C_CLICK_THRU_ACQUISITIONS_VALUE] =
                    convert(matured(click_thru * acquisition_value));
                s[C_SESSIONS] = impressions * (70 + (r(11) % 25) as i64) / 100;
            }
            Report::Transactions => {
                let transactions = (5_000 + (r(1) % 20_000) as i64) * weekday / 100;
                let impressions = transactions * (80 + (r(2) % 20) as i64) / 100;
                let engagements = impressions * (10 + (r(3) % 20) as i64) / 100;
                let referrals = engagements * (20 + (r(4) % 30) as i64) / 100;
                s[T_TRANSACTIONS] = transactions;
                s[T_IMPRESSIONS] = impressions;
                s[T_ENGAGEMENTS] = engagements;
                s[T_REFERRALS] = referrals;
                s[T_REVENUE] = convert(referrals * (50 + (r(5) % 150) as i64));
                // Drawn after the others, so adding them left every older number as it was.
                s[T_PLACEMENT_IMPRESSIONS] = impressions * (40 + (r(6) % 40) as i64) / 100;
                s[T_PURCHASES] = transactions * (55 + (r(7) % 35) as i64) / 100;
                if !extended {
                    return s;
                }
                s[T_PAGE_TRANSACTIONS] = transactions * (60 + (r(8) % 35) as i64) / 100;
            }
        }
        s
    }
}

/// What a query asks for, validated.
pub(crate) struct Query {
    pub(crate) report: Report,
    pub(crate) dims: Vec<Dim>,
    pub(crate) metrics: Vec<&'static MetricDef>,
    pub(crate) start: NaiveDate,
    pub(crate) end_exclusive: NaiveDate,
    /// One row per day (with `datetime`) instead of totals over the range.
    pub(crate) interval: bool,
    /// The report's time zone as asked (`timezoneVariation`); `None`: the account's own (see
    /// [`Query::for_account`]).
    pub(crate) zone: Option<chrono_tz::Tz>,
    /// The currency's rate (hundredths per US dollar) as asked; `None`: the account's own.
    pub(crate) currency_rate: Option<i64>,
    /// Only rows whose dimension has one of these values.
    pub(crate) filters: Vec<(Dim, Vec<String>)>,
    /// Sort columns, `true` for descending.
    pub(crate) order_by: Vec<(Column, bool)>,
    /// The breakdown chain to use instead of the report's (the legacy partner-source breakdown).
    pub(crate) chain: Option<&'static [Dim]>,
    /// Keep each row's distinct things ([`Group::seen`]): a metric or field counts them.
    pub(crate) distinct: bool,
    /// Compute every quantity, the [`extended_quantities`] too: a metric or field reads them.
    pub(crate) extended: bool,
}

impl Query {
    /// The query as the API answers it for `account`: a zone or currency it does not name are
    /// the account's own (`accountTimezone`, `accountCurrencyCode`).
    pub(crate) fn for_account(mut self, account: &Account) -> Query {
        if self.zone.is_none() {
            self.zone = account.timezone.parse().ok();
        }
        if self.currency_rate.is_none() {
            self.currency_rate = currency_rate(account.currency);
        }
        self
    }
}

/// A sort column: the `i`-th requested dimension, or a metric.
pub(crate) enum Column {
    Dim(usize),
    Metric(&'static MetricDef),
}

/// One answered row before it is written: its day (with `interval`), the value index of each
/// requested dimension and the summed quantities.
pub(crate) struct Group {
    pub(crate) day: Option<NaiveDate>,
    pub(crate) key: [u32; MAX_DIMS],
    pub(crate) sums: Sums,
    /// The distinct things of its cells, when the query keeps them.
    pub(crate) seen: Option<Box<Seen>>,
}

#[derive(Clone, Copy)]
enum Source {
    Attr(Dim),
    Split(usize),
}

#[derive(Default)]
struct Accumulator {
    /// Every added cell is a distinct group: no lookup needed.
    direct: bool,
    groups: Vec<Group>,
    index: HashMap<(Option<NaiveDate>, [u32; MAX_DIMS]), usize>,
}

impl Accumulator {
    /// Adds a cell to its group; `distinct`: the groups keep their distinct things, and `cell`
    /// says what this one has (`None`: nothing, it has no impression).
    fn add(
        &mut self,
        day: Option<NaiveDate>,
        key: [u32; MAX_DIMS],
        sums: &Sums,
        distinct: bool,
        cell: Option<&Cell>,
    ) {
        let found = if self.direct {
            None
        } else {
            self.index.get(&(day, key)).copied()
        };
        let i = match found {
            Some(i) => {
                for (a, b) in self.groups[i].sums.iter_mut().zip(sums) {
                    *a += b;
                }
                i
            }
            None => {
                if !self.direct {
                    self.index.insert((day, key), self.groups.len());
                }
                self.groups.push(Group {
                    day,
                    key,
                    sums: *sums,
                    seen: distinct.then(Box::default),
                });
                self.groups.len() - 1
            }
        };
        if let (Some(cell), Some(seen)) = (cell, self.groups[i].seen.as_mut()) {
            seen.add(cell);
        }
    }
}

/// Splits `sums` along `chain[level..depth]` and calls `emit` with each leaf's value path.
///
/// Part `i` of a quantity `v` is `floor(v * C_i / W) - floor(v * C_{i-1} / W)` with `C_i` the
/// cumulative weight: the parts are never negative and always add up to exactly `v`.
fn walk(
    chain: &[Dim],
    level: usize,
    depth: usize,
    h: u64,
    sums: &Sums,
    path: &mut [u32; 8],
    emit: &mut impl FnMut(&[u32], &Sums),
) {
    if level >= depth || level >= chain.len() {
        emit(&path[..level], sums);
        return;
    }
    let values = chain[level].split_values().unwrap_or(&[]);
    let weights: Vec<u64> = values
        .iter()
        .enumerate()
        .map(|(i, (_, prior))| prior * (80 + mix3(h, level as u64 + 101, i as u64) % 41))
        .collect();
    let total: u64 = weights.iter().sum::<u64>().max(1);
    let mut cumulative = 0u64;
    let mut prev = [0i64; QUANTITIES];
    for (i, w) in weights.iter().enumerate() {
        cumulative += w;
        let mut part = [0i64; QUANTITIES];
        for m in 0..part.len() {
            let upto = (i128::from(sums[m]) * i128::from(cumulative) / i128::from(total)) as i64;
            part[m] = upto - prev[m];
            prev[m] = upto;
        }
        path[level] = i as u32;
        walk(
            chain,
            level + 1,
            depth,
            mix(h, i as u64 + 1),
            &part,
            path,
            emit,
        );
    }
}

fn day_number(day: NaiveDate) -> u64 {
    day.num_days_from_ce() as u64
}

/// What the report zone adds to a day's seed: its UTC offset at noon that day, or nothing at
/// offset zero (so UTC reports keep the numbers they had before zones mattered).
fn zone_salt(zone: chrono_tz::Tz, day: NaiveDate) -> u64 {
    use chrono::{Offset as _, TimeZone as _};
    let noon = day.and_hms_opt(12, 0, 0).unwrap_or_default();
    let seconds = zone.offset_from_utc_datetime(&noon).fix().local_minus_utc();
    if seconds == 0 {
        0
    } else {
        mix(0x5A17_u64, seconds as u64)
    }
}

/// splitmix64's finalizer over a combination of two words: cheap, well mixed, stable forever.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn mix3(a: u64, b: u64, c: u64) -> u64 {
    mix(mix(a, b), c)
}

/// FNV-1a: a hash of a string that does not change between Rust releases (unlike `DefaultHasher`).
pub(crate) fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn catalog() -> Catalog {
        Catalog::new(7, &["3141592".into(), "2718281".into()], 5, 2)
    }

    fn query(dims: &[Dim], interval: bool, start: &str, end: &str) -> Query {
        Query {
            report: Report::Campaigns,
            dims: dims.to_vec(),
            metrics: metrics(Report::Campaigns).iter().collect(),
            start: day(start),
            end_exclusive: day(end),
            interval,
            zone: Some(chrono_tz::UTC),
            currency_rate: Some(100),
            filters: vec![],
            order_by: vec![],
            chain: None,
            distinct: false,
            extended: true,
        }
    }

    fn total(groups: &[Group]) -> Sums {
        let mut t = [0i64; QUANTITIES];
        for g in groups {
            for (a, b) in t.iter_mut().zip(&g.sums) {
                *a += b;
            }
        }
        t
    }

    #[test]
    fn every_grouping_sums_to_the_same_total() {
        let c = catalog();
        let a = &c.accounts()[0];
        let today = day("2026-03-20");
        let shapes: &[&[Dim]] = &[
            &[],
            &[Dim::CampaignId],
            &[Dim::CreativeId],
            &[Dim::Device],
            &[Dim::Gender],
            &[Dim::CampaignId, Dim::AudienceName, Dim::Device],
            &[Dim::AgeRange, Dim::CampaignCountry],
            // Shapes where each cell is its own row (no grouping map), and one where it is not.
            &[Dim::CreativeId],
            &[Dim::CreativeName, Dim::Device, Dim::Gender],
            &[Dim::CreativeId, Dim::Gender],
            // An audience's id and name are one split.
            &[Dim::AudienceId, Dim::AudienceName],
        ];
        let reference = total(&c.run(a, &query(&[], false, "2026-03-01", "2026-03-21"), today));
        assert!(reference[C_IMPRESSIONS] > 0);
        for dims in shapes {
            for interval in [false, true] {
                let groups = c.run(a, &query(dims, interval, "2026-03-01", "2026-03-21"), today);
                assert_eq!(total(&groups), reference, "{dims:?} interval={interval}");
                let keys: std::collections::HashSet<_> =
                    groups.iter().map(|g| (g.day, g.key)).collect();
                assert_eq!(keys.len(), groups.len(), "one row per key: {dims:?}");
            }
        }
    }

    #[test]
    fn campaign_rows_are_sums_of_creative_rows() {
        let c = catalog();
        let a = &c.accounts()[1];
        let today = day("2026-03-20");
        let q = query(
            &[Dim::CampaignId, Dim::CreativeId],
            true,
            "2026-03-10",
            "2026-03-12",
        );
        let fine = c.run(a, &q, today);
        let coarse = c.run(
            a,
            &query(&[Dim::CampaignId], true, "2026-03-10", "2026-03-12"),
            today,
        );
        assert_eq!(coarse.len(), 2 * 5);
        for g in &coarse {
            let parts: Vec<&Group> = fine
                .iter()
                .filter(|f| f.day == g.day && f.key[0] == g.key[0])
                .collect();
            assert_eq!(parts.len(), 2);
            let mut t = [0i64; QUANTITIES];
            for p in parts {
                for (x, y) in t.iter_mut().zip(&p.sums) {
                    *x += y;
                }
            }
            assert_eq!(t, g.sums);
        }
    }

    #[test]
    fn ratios_are_written_with_at_most_six_decimals() {
        let mut s = String::new();
        Num::Ratio(1.0 / 3.0).write(&mut s);
        s.push(' ');
        Num::Ratio(0.05).write(&mut s);
        s.push(' ');
        Num::Ratio(3.0).write(&mut s);
        s.push(' ');
        Num::Ratio(f64::NAN).write(&mut s);
        s.push(' ');
        Num::Money(12_345).write(&mut s);
        s.push(' ');
        Num::Money(7).write(&mut s);
        assert_eq!(s, "0.333333 0.05 3 0 123.45 0.07");
    }

    #[test]
    fn counts_and_money_are_written_plainly() {
        let written = |n: Num| {
            let mut s = String::new();
            n.write(&mut s);
            s
        };
        assert_eq!(written(Num::Int(0)), "0");
        assert_eq!(written(Num::Int(-42)), "-42");
        assert_eq!(written(Num::Int(9_007_199_254_740_993)), "9007199254740993");
        assert_eq!(written(Num::Money(0)), "0.00");
        assert_eq!(written(Num::Money(5)), "0.05");
        assert_eq!(written(Num::Money(100)), "1.00");
        assert_eq!(written(Num::Money(123_456)), "1234.56");
        assert_eq!(written(Num::Money(1_010)), "10.10");
    }

    #[test]
    fn numbers_are_pinned() {
        // Changing any of these changes every number the simulation serves (and what users who
        // compare against saved answers see): do it on purpose only.
        assert_eq!(hash_str("3141592"), 10_361_877_919_651_747_138);
        assert_eq!(mix(1, 2), 17_911_839_290_282_890_590);
        let c = Catalog::new(42, &["3141592".into()], 5, 2);
        let q = query(&[], false, "2026-03-01", "2026-03-02");
        let sums = c.run(&c.accounts()[0], &q, day("2026-03-20"))[0].sums;
        // The quantities the simulation served before issue 16 kept their numbers.
        assert_eq!(
            sums[..9],
            [
                40_722, 1_864, 359_052, 305_190, 279, 88, 373, 409, 2_804_486
            ]
        );
        assert_eq!(
            sums[9..],
            [281, 321, 413, 326, 2_222_542, 3_533_719, 2_740_150, 32_557]
        );
        // A query no metric of which reads the quantities drawn last does not draw them, and
        // the others are the same.
        let lean = Query {
            extended: false,
            ..query(&[], false, "2026-03-01", "2026-03-02")
        };
        let lean = c.run(&c.accounts()[0], &lean, day("2026-03-20"))[0].sums;
        assert_eq!(lean[..9], sums[..9]);
        assert_eq!(lean[9..], [0; 8]);
    }
}
