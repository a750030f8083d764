//! What the API says about accounts: the list the credentials read (`GET /v1/query/accounts`) and
//! what a report offers one of them (`GET /v1/query/accounts/{id}/{report}/help`), read leniently
//! (either shape of the list, offsets in either spelling) but never trusting an account id.

use super::{ApiError, ApiResponse};
use crate::config::account_id::{ACCOUNT_ID_RULE, is_account_id, quote_id};

/// An account the credentials can read (`GET /v1/query/accounts`). Every field but the id is
/// text from the API, as sent: escape it before it reaches a terminal or a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    pub account_name: Option<String>,
    /// `countryCode`.
    pub country: Option<String>,
    /// `accountCurrencyCode`.
    pub currency: Option<String>,
    /// `accountTimezone` (an Olson name).
    pub timezone: Option<String>,
    /// `accountTimezoneOffset`: minutes (PostHog's reading), or an `+HH:MM` offset as older
    /// answers may write it, in minutes east of UTC.
    pub timezone_offset_minutes: Option<i32>,
    /// `accountOwner` (an e-mail address).
    pub owner: Option<String>,
}

/// What one report offers an account (`GET /v1/query/accounts/{id}/{report}/help`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    pub dimensions: Vec<Slug>,
    pub metrics: Vec<Slug>,
}

impl Offer {
    /// Whether the account offers this dimension or metric slug.
    pub fn has(&self, slug: &str) -> bool {
        self.dimensions
            .iter()
            .chain(&self.metrics)
            .any(|s| s.slug == slug)
    }
}

/// A slug the help lists, with its description when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug {
    pub slug: String,
    pub description: Option<String>,
}

/// Reads the accounts list: a top-level array (as documented) or one wrapped in `data`.
pub(super) fn parse_accounts(response: &ApiResponse) -> Result<Vec<Account>, ApiError> {
    let value: serde_json::Value = response.json()?;
    let shape_error = |message: &str| ApiError::MalformedJson {
        endpoint: response.endpoint.clone(),
        line: 1,
        column: 1,
        message: message.to_owned(),
    };
    let items = match &value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(o) => match o.get("data") {
            Some(serde_json::Value::Array(items)) => items,
            _ => return Err(shape_error("expected an array of accounts")),
        },
        _ => return Err(shape_error("expected an array of accounts")),
    };
    let text = |item: &serde_json::Value, key: &str| -> Option<String> {
        match item.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let account_id = text(item, "accountId").ok_or_else(|| {
                shape_error(&format!("account {i} has no `accountId` string or number"))
            })?;
            // It goes into request paths and tables: refuse the whole list rather than guess.
            if !is_account_id(&account_id) {
                return Err(ApiError::Refused {
                    endpoint: response.endpoint.clone(),
                    message: format!(
                        "account {i} has the id {}, which is not an account id (an id is \
                         {ACCOUNT_ID_RULE}); the list is refused",
                        quote_id(&account_id)
                    ),
                });
            }
            Ok(Account {
                account_id,
                account_name: text(item, "accountName"),
                country: text(item, "countryCode"),
                currency: text(item, "accountCurrencyCode"),
                timezone: text(item, "accountTimezone"),
                timezone_offset_minutes: item.get("accountTimezoneOffset").and_then(offset_minutes),
                owner: text(item, "accountOwner"),
            })
        })
        .collect()
}

/// `accountTimezoneOffset` in minutes east of UTC: a number of minutes, or text such as
/// `"-300"` or `"+05:30"`.
fn offset_minutes(value: &serde_json::Value) -> Option<i32> {
    match value {
        serde_json::Value::Number(n) => n.as_i64().and_then(|m| i32::try_from(m).ok()),
        serde_json::Value::String(s) => {
            let s = s.trim();
            if let Ok(m) = s.parse::<i32>() {
                return Some(m);
            }
            let (sign, rest) = match s.as_bytes().first() {
                Some(b'-') => (-1, &s[1..]),
                Some(b'+') => (1, &s[1..]),
                _ => (1, s),
            };
            let (h, m) = rest.split_once(':')?;
            let (h, m) = (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?);
            (h <= 18 && m < 60).then_some(sign * (h * 60 + m))
        }
        _ => None,
    }
}

/// Reads a report's help: `{"dimensions": [{"slug", "description"}], "metrics": [...]}`. An entry
/// without a `slug` string is skipped; a missing list is empty.
pub(super) fn parse_help(response: &ApiResponse) -> Result<Offer, ApiError> {
    let value: serde_json::Value = response.json()?;
    if !value.is_object() {
        return Err(ApiError::MalformedJson {
            endpoint: response.endpoint.clone(),
            line: 1,
            column: 1,
            message: "expected an object with `dimensions` and `metrics`".to_owned(),
        });
    }
    let list = |key: &str| -> Vec<Slug> {
        value
            .get(key)
            .and_then(serde_json::Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        Some(Slug {
                            slug: item.get("slug")?.as_str()?.to_owned(),
                            description: item
                                .get("description")
                                .and_then(serde_json::Value::as_str)
                                .map(str::to_owned),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Offer {
        dimensions: list("dimensions"),
        metrics: list("metrics"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;

    #[test]
    fn time_zone_offsets_are_read_as_minutes_in_either_spelling() {
        use serde_json::json;
        assert_eq!(offset_minutes(&json!(-300)), Some(-300));
        assert_eq!(offset_minutes(&json!(660)), Some(660));
        assert_eq!(offset_minutes(&json!("-300")), Some(-300));
        assert_eq!(offset_minutes(&json!("+05:30")), Some(330));
        assert_eq!(offset_minutes(&json!("-03:00")), Some(-180));
        assert_eq!(offset_minutes(&json!("Mars")), None);
        assert_eq!(offset_minutes(&json!(null)), None);
    }

    #[test]
    fn accounts_are_read_from_either_shape() {
        let response = |body: &'static [u8]| ApiResponse {
            body: Bytes::from_static(body),
            endpoint: "GET /v1/query/accounts".into(),
            attempts: 1,
        };
        let plain = parse_accounts(&response(
            br#"[{"accountId":"1","accountName":"A","accountCurrencyCode":"USD","accountTimezone":"UTC"},{"accountId":2}]"#,
        ))
        .unwrap();
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[0].currency.as_deref(), Some("USD"));
        assert_eq!(plain[1].account_id, "2");
        let wrapped = parse_accounts(&response(br#"{"data":[{"accountId":"7"}]}"#)).unwrap();
        assert_eq!(wrapped[0].account_id, "7");
        assert!(matches!(
            parse_accounts(&response(br#"[{"name":"x"}]"#)),
            Err(ApiError::MalformedJson { .. })
        ));
    }
}
