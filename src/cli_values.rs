//! Command-line values (docs/configs.md): `--KEY VALUE...` where the tokens after a flag form one YAML
//! value, and braces/brackets may span several shell words, as in the original tool:
//! `--optimizers {trunk_optimizer: {Adam: {lr: 0.01}}}` arrives as five argv tokens.
//!
//! Rules (the original's algorithm, EMAG `add_unknown_args` + `validate_command_line_input`, with
//! two deliberate differences: values are YAML 1.2, so `1e-6` is a number, and a quoted single-token
//! value such as `"{a: 1}"` is accepted):
//! - a token `--NAME` (a letter or `_` after the dashes) starts a flag; a flag with no value is `true`;
//! - the first token after a flag is its value; while brackets opened by the value are unbalanced the
//!   following tokens are part of it too (joined with single spaces);
//! - a token that is neither a flag nor part of a value is an error (`--foo a b`: lists are `[a, b]`);
//! - a value whose `{`/`}` or `[`/`]` counts differ is an error, as is a flag inside an open bracket;
//! - inside a flow mapping, a key followed by a colon with no space (`{lr:0.1}`) is an error: YAML
//!   would silently read it as the single key `"lr:0.1"`. A colon inside a plain value is fine:
//!   `--device cuda:0`, `--devices [cuda:0, cuda:1]`, `{device: cuda:0}`.

use serde_yaml::Value;
use std::fmt;

/// One `--KEY VALUE` pair, in command-line order. `key` keeps any keyword suffix
/// (`optimizers~OVERRIDE~`).
#[derive(Debug, Clone, PartialEq)]
pub struct CliValue {
    pub key: String,
    pub value: Value,
}

/// A command-line value that cannot be read; the message quotes the offending token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// True for `--name` tokens (the original's `^--[a-zA-Z]`, plus `_`).
pub fn is_flag(token: &str) -> bool {
    token
        .strip_prefix("--")
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}

/// Bracket bookkeeping over the text of one value, carried across its tokens. Quotes are honoured
/// (`"a[b"` opens nothing) and flow-mapping key positions are tracked for the colon check.
#[derive(Default)]
struct Scanner {
    quote: Option<char>,
    /// Open flow collections: `true` for a mapping whose current entry is still in key position.
    stack: Vec<Frame>,
    open_braces: usize,
    close_braces: usize,
    open_brackets: usize,
    close_brackets: usize,
    closed_too_many: bool,
    /// Set when a key in a flow mapping is followed by `:` and no space.
    bad_colon: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Frame {
    Map { in_key: bool },
    Seq,
}

impl Scanner {
    fn feed(&mut self, token: &str) {
        let chars: Vec<char> = token.chars().collect();
        // Tokens are joined with spaces, so each starts after a space.
        let mut prev = ' ';
        let mut skip = false;
        for (i, &c) in chars.iter().enumerate() {
            let before = std::mem::replace(&mut prev, c);
            if skip {
                skip = false;
                continue;
            }
            if let Some(q) = self.quote {
                if q == '"' && c == '\\' {
                    skip = true; // an escaped character
                } else if q == '\'' && c == '\'' && chars.get(i + 1) == Some(&'\'') {
                    skip = true; // `''` is a quote inside single quotes
                } else if c == q {
                    self.quote = None;
                }
                continue;
            }
            match c {
                // A quote opens a quoted scalar only where a scalar can start (`it's` is plain).
                '"' | '\'' if matches!(before, ' ' | '{' | '[' | ',' | ':') => self.quote = Some(c),
                '{' => {
                    self.open_braces += 1;
                    self.stack.push(Frame::Map { in_key: true });
                }
                '[' => {
                    self.open_brackets += 1;
                    self.stack.push(Frame::Seq);
                }
                '}' | ']' => {
                    if c == '}' {
                        self.close_braces += 1;
                    } else {
                        self.close_brackets += 1;
                    }
                    if self.stack.pop().is_none() {
                        self.closed_too_many = true;
                    }
                }
                ',' => {
                    if let Some(Frame::Map { in_key }) = self.stack.last_mut() {
                        *in_key = true;
                    }
                }
                ':' => {
                    if let Some(Frame::Map { in_key }) = self.stack.last_mut() {
                        if *in_key {
                            // A separator is followed by a space (the token ends there), a comma or a
                            // closing bracket; anything else glues the colon into the key.
                            let next = chars.get(i + 1).copied();
                            if matches!(next, None | Some(' ' | ',' | '}' | ']')) {
                                *in_key = false;
                            } else {
                                self.bad_colon = true;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn depth(&self) -> usize {
        self.stack.len()
    }

    fn balanced(&self) -> bool {
        self.open_braces == self.close_braces && self.open_brackets == self.close_brackets
    }

    fn imbalance(&self) -> String {
        let mut parts = Vec::new();
        if self.open_braces != self.close_braces {
            parts.push(format!(
                "{} `{{` and {} `}}`",
                self.open_braces, self.close_braces
            ));
        }
        if self.open_brackets != self.close_brackets {
            parts.push(format!(
                "{} `[` and {} `]`",
                self.open_brackets, self.close_brackets
            ));
        }
        if parts.is_empty() {
            "brackets closed in the wrong order".to_string()
        } else {
            parts.join(", ")
        }
    }
}

fn missing_flag(token: &str, after: Option<&str>) -> CliError {
    let context = match after {
        Some(key) => format!(" (it follows the complete value of --{key})"),
        None => String::new(),
    };
    CliError(format!(
        "`{token}` has no flag in front of it{context}: every value must follow a --KEY flag, \
         and one flag takes one value; lists are written [a, b]"
    ))
}

/// Groups argv tokens into `--KEY VALUE` pairs, parsing each value as YAML 1.2.
pub fn parse(tokens: &[String]) -> Result<Vec<CliValue>, CliError> {
    let mut out: Vec<CliValue> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if !is_flag(token) {
            return Err(missing_flag(token, out.last().map(|cv| cv.key.as_str())));
        }
        let key = token[2..].to_string();
        if let Some((name, _)) = key.split_once('=') {
            return Err(CliError(format!(
                "`{token}`: write the value after a space, as in `--{name} VALUE` (`=` is not used)"
            )));
        }
        i += 1;
        let mut parts: Vec<&str> = Vec::new();
        let mut scanner = Scanner::default();
        let mut bad_colon_token: Option<&str> = None;
        while i < tokens.len() {
            let t = tokens[i].as_str();
            if is_flag(t) {
                break;
            }
            if !parts.is_empty() && scanner.depth() == 0 {
                break;
            }
            scanner.feed(t);
            if scanner.bad_colon && bad_colon_token.is_none() {
                bad_colon_token = Some(t);
            }
            parts.push(t);
            i += 1;
            if scanner.closed_too_many {
                return Err(CliError(format!(
                    "bracket imbalance in the value of --{key}: `{}` has {} (`{t}` closes a bracket \
                     that was never opened)",
                    parts.join(" "),
                    scanner.imbalance()
                )));
            }
        }
        if !scanner.balanced() || scanner.depth() != 0 {
            let stopped_at = tokens
                .get(i)
                .filter(|t| is_flag(t))
                .map(|t| format!("; it is cut short by the next flag `{t}`"))
                .unwrap_or_default();
            return Err(CliError(format!(
                "bracket imbalance in the value of --{key}: `{}` has {}{stopped_at}",
                parts.join(" "),
                scanner.imbalance()
            )));
        }
        if let Some(t) = bad_colon_token {
            return Err(CliError(format!(
                "a colon must be followed by a space: `{t}` in the value of --{key} \
                 (write `key: value`, e.g. `{{lr: 0.1}}`, not `{{lr:0.1}}`)"
            )));
        }
        let value = if parts.is_empty() {
            Value::Bool(true)
        } else {
            let text = parts.join(" ");
            serde_yaml::from_str::<Value>(&text).map_err(|e| {
                CliError(format!(
                    "the value of --{key} is not valid YAML: `{text}`: {e}"
                ))
            })?
        };
        out.push(CliValue { key, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn values_span_shell_words() {
        let got = parse(&toks(
            "--optimizers {trunk_optimizer: {Adam: {lr: 0.01}}} --splits_to_eval [train, val] --patience null --evaluate",
        ))
        .unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].key, "optimizers");
        assert_eq!(got[0].value, yaml("{trunk_optimizer: {Adam: {lr: 0.01}}}"));
        assert_eq!(got[1].value, yaml("[train, val]"));
        assert_eq!(got[2].value, Value::Null);
        assert_eq!(got[3].value, Value::Bool(true));
    }

    #[test]
    fn yaml_1_2_scalars() {
        let got = parse(&toks(
            "--lr 1e-6 --device cuda:0 --name abc --flag yes --n 256 --t True",
        ))
        .unwrap();
        assert_eq!(got[0].value.as_f64(), Some(1e-6));
        assert_eq!(got[1].value.as_str(), Some("cuda:0"));
        assert_eq!(got[2].value.as_str(), Some("abc"));
        // YAML 1.2: `yes` is a string, `True` a boolean.
        assert_eq!(got[3].value.as_str(), Some("yes"));
        assert_eq!(got[4].value.as_u64(), Some(256));
        assert_eq!(got[5].value, Value::Bool(true));
    }

    #[test]
    fn colons_inside_plain_values_are_fine() {
        let got = parse(&toks(
            "--devices [cuda:0, cuda:1] --x {device: cuda:0} --url http://a.b/c",
        ))
        .unwrap();
        assert_eq!(got[0].value, yaml("[cuda:0, cuda:1]"));
        assert_eq!(got[1].value["device"].as_str(), Some("cuda:0"));
        assert_eq!(got[2].value.as_str(), Some("http://a.b/c"));
    }

    #[test]
    fn quoted_single_token_values_are_accepted() {
        let got = parse(&[
            "--models".to_string(),
            "{trunk: {MLP: null}}".to_string(),
            "--name".to_string(),
            "'a [b'".to_string(),
        ])
        .unwrap();
        assert_eq!(got[0].value, yaml("{trunk: {MLP: null}}"));
        assert_eq!(got[1].value.as_str(), Some("a [b"));
        // An apostrophe inside a plain scalar opens no quote.
        let got = parse(&toks("--x {name: it's, b: [1]} --y \"a\\\"}\"")).unwrap();
        assert_eq!(got[0].value, yaml("{name: it's, b: [1]}"));
        assert_eq!(got[1].value.as_str(), Some("a\"}"));
    }

    #[test]
    fn keyword_suffixes_stay_in_the_key() {
        let got = parse(&toks(
            "--optimizers~OVERRIDE~ {a: 1} --lr~LOG_BAYESIAN~ [1e-5, 0.1]",
        ))
        .unwrap();
        assert_eq!(got[0].key, "optimizers~OVERRIDE~");
        assert_eq!(got[1].key, "lr~LOG_BAYESIAN~");
        assert_eq!(got[1].value, yaml("[1.0e-5, 0.1]"));
    }

    #[test]
    fn a_value_without_a_flag_is_an_error_quoting_it() {
        let e = parse(&toks("val --x 1")).unwrap_err().0;
        assert!(e.starts_with("`val` has no flag in front of it"), "{e}");
        let e = parse(&toks("--foo a b")).unwrap_err().0;
        assert!(e.contains("`b` has no flag") && e.contains("--foo"), "{e}");
        assert!(e.contains("[a, b]"), "{e}");
        let e = parse(&toks("--x {a: 1} {b: 2}")).unwrap_err().0;
        assert!(e.contains("`{b:` has no flag"), "{e}");
        let e = parse(&toks("--x=3")).unwrap_err().0;
        assert!(e.contains("`--x=3`") && e.contains("--x VALUE"), "{e}");
    }

    #[test]
    fn bracket_imbalance_counts_each_kind() {
        let e = parse(&toks("--optimizers {trunk_optimizer: {RMSprop: {lr: 0.5}}"))
            .unwrap_err()
            .0;
        assert!(e.contains("bracket imbalance"), "{e}");
        assert!(e.contains("3 `{` and 2 `}`"), "{e}");
        assert!(
            e.contains("`{trunk_optimizer: {RMSprop: {lr: 0.5}}`"),
            "{e}"
        );
        let e = parse(&toks("--x {a: [1, 2} --y 3")).unwrap_err().0;
        assert!(e.contains("1 `[` and 0 `]`"), "{e}");
        let e = parse(&toks("--x {a: 1}}")).unwrap_err().0;
        assert!(e.contains("never opened") && e.contains("`1}}`"), "{e}");
        let e = parse(&toks("--x {a: 1 --y 2")).unwrap_err().0;
        assert!(e.contains("cut short by the next flag `--y`"), "{e}");
        let e = parse(&toks("--x [1, 2]]")).unwrap_err().0;
        assert!(e.contains("2 `[`") || e.contains("1 `[` and 2 `]`"), "{e}");
    }

    #[test]
    fn colon_without_space_in_a_key_is_an_error_quoting_the_token() {
        let e = parse(&toks("--x {lr:0.1}")).unwrap_err().0;
        assert!(e.contains("space") && e.contains("`{lr:0.1}`"), "{e}");
        // One quoted token (example P3 of the merge examples).
        let e = parse(&[
            "--optimizers".to_string(),
            "{trunk_optimizer:{RMSprop: {lr: 0.5}}}".to_string(),
        ])
        .unwrap_err()
        .0;
        assert!(e.contains("colon must be followed by a space"), "{e}");
        assert!(
            e.contains("`{trunk_optimizer:{RMSprop: {lr: 0.5}}}`"),
            "{e}"
        );
        let e = parse(&toks("--x {a: {b:1}}")).unwrap_err().0;
        assert!(e.contains("`{b:1}}`"), "{e}");
        // Quoted keys may hold colons.
        let got = parse(&toks("--x {\"a:b\": 1}")).unwrap();
        assert_eq!(got[0].value["a:b"], yaml("1"));
    }

    #[test]
    fn invalid_yaml_is_reported_with_the_text() {
        let e = parse(&toks("--x 'abc")).unwrap_err().0;
        assert!(e.contains("not valid YAML") && e.contains("`'abc`"), "{e}");
    }
}
