//! Distinct counts: the `unique_*` metrics of the campaigns report and the legacy `campaigns`,
//! `creatives`, `audiences` and `campaignCountries` fields.
//!
//! A distinct count is not a sum: a campaign that ran on ten days counts once in a total over
//! those days, and a campaign shown to four audiences counts once in its campaign's row. So a row
//! keeps the set of things its cells have ([`Seen`]) and counts them when it is written. A cell
//! (one creative on one day, and one value of each breakdown it was split by) "has" its campaign,
//! its creative, its campaign's country and its audience when it has at least one impression; a
//! cell not split by audience reached every audience. Sets are only kept when a query asks for a
//! distinct count, so the report path that does not (the benchmark's) pays nothing.

/// What a distinct count counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Distinct {
    Campaigns,
    Creatives,
    Audiences,
    CampaignCountries,
}

/// What one cell has: indices into the account's campaigns and creatives, the country index of
/// its campaign, and its audiences as a bit mask.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cell {
    pub(crate) campaign: u32,
    pub(crate) creative: u32,
    pub(crate) country: u32,
    pub(crate) audiences: u64,
}

/// The distinct things of a row's cells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    campaigns: Vec<u64>,
    creatives: Vec<u64>,
    countries: u64,
    audiences: u64,
}

impl Seen {
    /// Adds a cell's things.
    pub(crate) fn add(&mut self, cell: &Cell) {
        set_bit(&mut self.campaigns, cell.campaign);
        set_bit(&mut self.creatives, cell.creative);
        self.countries |= 1u64 << (cell.country % 64);
        self.audiences |= cell.audiences;
    }

    /// How many distinct things of `kind` the row has.
    pub(crate) fn count(&self, kind: Distinct) -> i64 {
        let ones = match kind {
            Distinct::Campaigns => self.campaigns.iter().map(|w| w.count_ones()).sum(),
            Distinct::Creatives => self.creatives.iter().map(|w| w.count_ones()).sum(),
            Distinct::Audiences => self.audiences.count_ones(),
            Distinct::CampaignCountries => self.countries.count_ones(),
        };
        i64::from(ones)
    }
}

fn set_bit(words: &mut Vec<u64>, bit: u32) {
    let word = (bit / 64) as usize;
    if words.len() <= word {
        words.resize(word + 1, 0);
    }
    words[word] |= 1u64 << (bit % 64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_thing_once() {
        let mut seen = Seen::default();
        for (campaign, creative) in [(0, 0), (0, 1), (200, 1000), (0, 0)] {
            seen.add(&Cell {
                campaign,
                creative,
                country: campaign % 6,
                audiences: 0b0101,
            });
        }
        assert_eq!(seen.count(Distinct::Campaigns), 2);
        assert_eq!(seen.count(Distinct::Creatives), 3);
        assert_eq!(seen.count(Distinct::CampaignCountries), 2);
        assert_eq!(seen.count(Distinct::Audiences), 2);
        assert_eq!(Seen::default().count(Distinct::Campaigns), 0);
    }
}
