//! Turns `jobs.toml` into a [`Config`], reporting every problem with its line and key.
//!
//! We walk toml's spanned tree by hand instead of deriving `Deserialize`, because serde stops at the
//! first error and forgets where a value was; a user fixing a config wants all problems at once.
//! So every reader records its problem in [`Cx`] and returns `Err(Invalid)`, and the caller reads
//! the sibling keys before it gives up on the table.
//!
//! The walk is split by concern, each file adding methods to the walk's context [`Cx`]
//! (`context.rs`, which also collects the problems): this file holds the document and the
//! sections (`[api]`, `[database]`, `[server]`, `[defaults]`, the list of jobs); `job.rs` one job
//! and its two kinds; `values.rs` the value readers; `keys.rs` the table of keys they all consult.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::context::{Cx, Invalid, Item, Tbl};
use super::database_url::holds_password;
use super::keys::{KEYS, Section};
use super::values::{Values, is_identifier};
use super::{
    ApiConfig, Config, ConfigError, DatabaseConfig, DatabaseUrl, ENV_API_BASE_URL,
    ENV_DATABASE_URL, Env, ServerConfig, check_base_url, printable_url,
};

pub(super) fn parse(path: &Path, text: &str, env: &Env) -> Result<Config, ConfigError> {
    let mut cx = Cx::new(text, KEYS);
    let config = cx.document(path, text, env);
    match config {
        Ok(config) if cx.problems.is_empty() => Ok(config),
        _ => {
            if cx.problems.is_empty() {
                // Every `Invalid` comes with a problem, so this is unreachable in practice.
                cx.problem(None, "", "the configuration is incomplete");
            }
            cx.problems
                .sort_by_key(|p| (p.line.is_some(), p.line, p.column));
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: cx.problems,
            })
        }
    }
}

/// Only the `[api]` section of `text` (its keys checked, the environment's overrides applied;
/// the rest of the file is not read): for a command that talks to the API before any job is
/// written (`discover`).
pub(super) fn parse_api(path: &Path, text: &str, env: &Env) -> Result<ApiConfig, ConfigError> {
    let mut cx = Cx::new(text, KEYS);
    let api = match DeTable::parse(text) {
        Ok(root) => {
            let api = cx.section(root.get_ref(), Section::Api);
            cx.api(api.as_ref(), env)
        }
        Err(e) => {
            let message = format!("not valid TOML: {}", e.message().trim());
            Err(cx.problem(e.span(), "", message))
        }
    };
    match api {
        Ok(api) if cx.problems.is_empty() => Ok(api),
        _ => {
            if cx.problems.is_empty() {
                cx.problem(None, "api", "the [api] section is incomplete");
            }
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: cx.problems,
            })
        }
    }
}

impl Cx<'_> {
    fn document(&mut self, path: &Path, text: &str, env: &Env) -> Result<Config, Invalid> {
        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(e) => {
                let message = format!("not valid TOML: {}", e.message().trim());
                return Err(self.problem(e.span(), "", message));
            }
        };
        let root = root.get_ref();
        let sections: Vec<&str> = Section::ALL.iter().map(|s| s.name()).collect();
        self.check_keys(root, "", &sections);

        let api = self.section(root, Section::Api);
        let api = self.api(api.as_ref(), env);
        let database = self.section(root, Section::Database);
        let database = self.database(database.as_ref(), env);
        let server = self.section(root, Section::Server);
        let server = self.server(server.as_ref());
        let defaults = self.section(root, Section::Defaults);
        let defaults = self.defaults(defaults.as_ref());
        let jobs = self.jobs(root, &defaults);
        Ok(Config {
            path: path.to_owned(),
            api: api?,
            database: database?,
            server: server?,
            jobs: jobs?,
        })
    }

    /// The table `[section]`, its keys checked. One that is not a table is reported and then read
    /// as if it were absent, so that the rest (environment overrides, jobs) is still checked.
    fn section<'a, 'i>(&mut self, root: &'a DeTable<'i>, section: Section) -> Option<Tbl<'a, 'i>> {
        let name = section.name();
        let item = root.get(name)?;
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(item, name, "a table", item.get_ref());
            return None;
        };
        let allowed = self.allowed(section);
        self.check_keys(table, name, &allowed);
        Some(Tbl {
            table,
            path: name.to_owned(),
        })
    }

    fn api(&mut self, t: Option<&Tbl<'_, '_>>, env: &Env) -> Result<ApiConfig, Invalid> {
        let v = self.values(t, Section::Api, None);
        // An unreadable value counts as `false`: its own problem is reported already.
        let allow_insecure_http = self.get(&v, "allow_insecure_http");
        let insecure_ok = *allow_insecure_http.as_ref().unwrap_or(&false);
        let mut base_url = self.check(&v, "base_url", |url| {
            check_base_url(url, insecure_ok).map_err(|e| format!("\"{}\" {e}", printable_url(url)))
        });
        if let Some(url) = env.get(ENV_API_BASE_URL) {
            let from_env = check_base_url(url, insecure_ok).map_err(|e| {
                self.problem(
                    None,
                    ENV_API_BASE_URL,
                    format!(
                        "the environment variable ROKT_API_BASE_URL=\"{}\" {e}",
                        printable_url(url)
                    ),
                )
            });
            base_url = base_url.and(from_env);
        }
        let token_path = self.check(&v, "token_path", |p| {
            if p.starts_with('/') {
                Ok(p.to_owned())
            } else {
                Err(format!(
                    "\"{p}\" must be a path starting with `/`, e.g. \"/auth/oauth2/token\""
                ))
            }
        });
        let request_timeout = self.get(&v, "request_timeout_secs");
        let connect_timeout = self.get(&v, "connect_timeout_secs");
        let max_concurrent_requests = self.get(&v, "max_concurrent_requests");
        let max_retries = self.get(&v, "max_retries");
        let max_body_bytes = self.get(&v, "max_body_bytes");
        Ok(ApiConfig {
            base_url: base_url?,
            token_path: token_path?,
            request_timeout: Duration::from_secs(request_timeout?),
            connect_timeout: Duration::from_secs(connect_timeout?),
            max_concurrent_requests: max_concurrent_requests?,
            max_retries: max_retries?,
            max_body_bytes: max_body_bytes?,
            allow_insecure_http: allow_insecure_http?,
        })
    }

    fn database(&mut self, t: Option<&Tbl<'_, '_>>, env: &Env) -> Result<DatabaseConfig, Invalid> {
        let v = self.values(t, Section::Database, None);
        // The URL may carry a password: messages never echo it.
        let mut url = self.check(&v, "url", |u| {
            DatabaseUrl::parse(u).map_err(|e| format!("the URL {e}"))
        });
        if let Some((written, span)) = v.written("url")
            && holds_password(written)
        {
            url = Err(self.problem(
                Some(span),
                "database.url",
                "contains a password; keep secrets out of jobs.toml and set DATABASE_URL in the \
                 environment instead (the value is not shown)",
            ));
        }
        if let Some(u) = env.get(ENV_DATABASE_URL) {
            let from_env = DatabaseUrl::parse(u).map_err(|e| {
                self.problem(
                    None,
                    ENV_DATABASE_URL,
                    format!("the environment variable DATABASE_URL {e} (the value is not shown)"),
                )
            });
            url = url.and(from_env);
        }
        let schema = self.check(&v, "schema", |s| {
            if is_identifier(s) {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "\"{s}\" is not a safe SQL identifier; use lower-case letters, digits and \
                     `_`, starting with a letter or `_`, at most 63 characters"
                ))
            }
        });
        let timeout: u64 = self.get(&v, "statement_timeout_secs")?;
        Ok(DatabaseConfig {
            url: url?,
            schema: schema?,
            statement_timeout: Duration::from_secs(timeout),
        })
    }

    fn server(&mut self, t: Option<&Tbl<'_, '_>>) -> Result<ServerConfig, Invalid> {
        let v = self.values(t, Section::Server, None);
        let listen = self.check(&v, "listen", |l| {
            l.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "\"{l}\" is not an address and port such as \"127.0.0.1:9464\" or \
                     \"0.0.0.0:9464\""
                )
            })
        });
        let grace = self.get(&v, "shutdown_grace_secs");
        Ok(ServerConfig {
            listen: listen?,
            shutdown_grace: Duration::from_secs(grace?),
        })
    }

    /// The values jobs inherit: `[defaults]` over the key table's defaults. A wrong value is
    /// reported here once; the jobs that would inherit it are then invalid too.
    fn defaults(&mut self, t: Option<&Tbl<'_, '_>>) -> Values {
        self.values(t, Section::Defaults, None)
    }

    fn jobs(&mut self, root: &DeTable<'_>, defaults: &Values) -> Result<Vec<super::Job>, Invalid> {
        let Some(item) = root.get("jobs") else {
            return Err(self.problem(
                None,
                "jobs",
                "no jobs are defined; add at least one [[jobs]] table (see the shipped jobs.toml)",
            ));
        };
        let DeValue::Array(items) = item.get_ref() else {
            return Err(self.type_error(
                item,
                "jobs",
                "an array of tables ([[jobs]])",
                item.get_ref(),
            ));
        };
        if items.is_empty() {
            return Err(self.problem(
                Some(item.span()),
                "jobs",
                "no jobs are defined; add at least one [[jobs]] table",
            ));
        }
        let mut all = self.unique_names(items);
        let mut jobs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(table) = item.get_ref() else {
                all = Err(self.type_error(
                    item,
                    &format!("jobs[{i}]"),
                    "a table ([[jobs]])",
                    item.get_ref(),
                ));
                continue;
            };
            let t = Tbl {
                table,
                path: format!("jobs[{i}]"),
            };
            match self.job(&t, item.span(), defaults) {
                Ok(job) => jobs.push(job),
                Err(e) => all = Err(e),
            }
        }
        all.map(|()| jobs)
    }

    /// Job names and table names must be unique; checked on the raw entries so that a duplicate is
    /// reported even when the job has other problems.
    fn unique_names(&mut self, items: &[Item<'_>]) -> Result<(), Invalid> {
        let mut result = Ok(());
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut tables: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(table) = item.get_ref() else {
                continue;
            };
            let string = |key: &str| {
                table
                    .get(key)
                    .and_then(|v| v.get_ref().as_str().map(|s| (s.to_owned(), v.span())))
            };
            let name = string("name");
            if let Some((n, span)) = &name
                && let Some(first) = names.insert(n.clone(), i)
            {
                result = Err(self.problem(
                    Some(span.clone()),
                    &format!("jobs[{i}].name"),
                    format!(
                        "job name \"{n}\" is already used by jobs[{first}]; job names must be unique"
                    ),
                ));
                continue;
            }
            if let Some((t, span)) = string("table").or(name)
                && let Some(first) = tables.insert(t.clone(), i)
            {
                result = Err(self.problem(
                    Some(span),
                    &format!("jobs[{i}].table"),
                    format!(
                        "table \"{t}\" is already written by jobs[{first}]; give each job its own \
                         table (set `table`)"
                    ),
                ));
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::{Key, Kind, Place, reference_of};

    const JOB: &str = "name = \"j\"\nschedule = \"15 5 * * *\"\naccounts = [\"1\"]\n\
                       report = \"campaigns\"\nmetrics = [\"impressions\"]\n";

    /// The key table with one more inheritable key, as the first of the two edits in `keys.rs`'s
    /// docs would write it. (The second edit, `Job`'s field, cannot be made in a test.)
    fn with_compare_first() -> Vec<Key> {
        let mut keys = KEYS.to_vec();
        keys.push(Key {
            name: "compare_first",
            place: Place::Inherited,
            kind: Kind::Bool { default: false },
            doc: "re-read each window and compare before writing",
        });
        keys
    }

    /// Parses `text` with `keys`; per job, the `compare_first` it ends up with; or every problem.
    fn compare_first_per_job(keys: &[Key], text: &str) -> Result<Vec<bool>, Vec<String>> {
        let mut cx = Cx::new(text, keys);
        let config = cx.document(Path::new("jobs.toml"), text, &Env::default());
        if config.is_err() || !cx.problems.is_empty() {
            return Err(cx.problems.iter().map(ToString::to_string).collect());
        }
        // `Job` has no `compare_first`: read what each job would fill it from, as `job.rs` does.
        let mut cx = Cx::new(text, keys);
        let mut compare_first = Vec::new();
        if let Ok(root) = DeTable::parse(text)
            && let Some(DeValue::Array(jobs)) = root.get_ref().get("jobs").map(|j| j.get_ref())
        {
            let defaults = cx.section(root.get_ref(), Section::Defaults);
            let defaults = cx.defaults(defaults.as_ref());
            for (i, item) in jobs.iter().enumerate() {
                let DeValue::Table(table) = item.get_ref() else {
                    continue;
                };
                let t = Tbl {
                    table,
                    path: format!("jobs[{i}]"),
                };
                let values = cx.values(Some(&t), Section::Jobs, Some(&defaults));
                compare_first.extend(cx.get::<bool>(&values, "compare_first"));
            }
        }
        Ok(compare_first)
    }

    #[test]
    fn an_inheritable_key_is_one_row() {
        let keys = with_compare_first();
        let text = format!(
            "[defaults]\ncompare_first = true\n[[jobs]]\n{JOB}\n[[jobs]]\n{}compare_first = false\n",
            JOB.replace("\"j\"", "\"k\"")
        );
        // Accepted in `[defaults]` and in jobs, inherited, and overridden.
        assert_eq!(compare_first_per_job(&keys, &text), Ok(vec![true, false]));
        // Without `[defaults]`, the table's default.
        assert_eq!(
            compare_first_per_job(&keys, &format!("[[jobs]]\n{JOB}")),
            Ok(vec![false])
        );
        // Type errors and typos are reported like any other key's.
        let problems = compare_first_per_job(
            &keys,
            &format!("[defaults]\ncompare_first = 3\n[[jobs]]\n{JOB}"),
        )
        .unwrap_err();
        assert_eq!(
            problems,
            ["`defaults.compare_first`: expected true or false, found an integer"]
        );
        let problems =
            compare_first_per_job(&keys, &format!("[[jobs]]\n{JOB}compre_first = true\n"))
                .unwrap_err();
        assert!(
            problems[0].contains(
                "`jobs[0].compre_first`: unknown key in `jobs[0]` (did you mean `compare_first`?)"
            ),
            "{problems:?}"
        );
        // The README's reference gains its two rows.
        let rows: Vec<String> = reference_of(&keys)
            .iter()
            .map(ToString::to_string)
            .filter(|r| r.contains("compare_first"))
            .collect();
        assert_eq!(
            rows,
            [
                "| `defaults.compare_first` | `false` | re-read each window and compare before writing |",
                "| `jobs.compare_first` | `defaults.compare_first` | as in `[defaults]` |",
            ]
        );
        // And without the row, the key is unknown.
        let problems = compare_first_per_job(
            KEYS,
            &format!("[defaults]\ncompare_first = true\n[[jobs]]\n{JOB}"),
        )
        .unwrap_err();
        assert!(
            problems[0].contains("unknown key in `defaults`"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_section_that_is_not_a_table_does_not_hide_other_problems() {
        let env = Env::default().with(ENV_API_BASE_URL, "ftp://x");
        let text = format!("api = 3\n[[jobs]]\n{JOB}window_days = 99\n");
        let Err(e) = parse(Path::new("jobs.toml"), &text, &env) else {
            panic!("accepted");
        };
        let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, [ENV_API_BASE_URL, "api", "jobs[0].window_days"]);
    }

    #[test]
    fn a_body_integer_too_big_for_json_is_reported() {
        let text = "[[jobs]]\nname = \"g\"\nschedule = \"0 6 * * *\"\naccounts = [\"1\"]\n\
                    endpoint = \"/x/{account_id}\"\nmethod = \"post\"\nrecords = \"\"\n\
                    key = [\"id\"]\nbody = { n = 0x7fff_ffff_ffff_ffff, m = 1 }\n";
        assert!(parse(Path::new("jobs.toml"), text, &Env::default()).is_ok());
        let text = text.replace("0x7fff_ffff_ffff_ffff", "0xffff_ffff_ffff_ffff");
        let Err(e) = parse(Path::new("jobs.toml"), &text, &Env::default()) else {
            panic!("accepted");
        };
        assert_eq!(e.problems()[0].key, "jobs[0].body.n");
        assert!(e.problems()[0].message.contains("does not fit"), "{e}");
    }
}
