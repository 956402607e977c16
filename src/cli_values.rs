//! Command-line values (SPEC §3.4): `--KEY VALUE...` where the tokens after a flag form one YAML
//! value, and braces/brackets may span several shell words, as in the original tool:
//! `--optimizers {trunk_optimizer: {Adam: {lr: 0.01}}}` arrives as five argv tokens.

use serde_yaml::Value;
use std::fmt;

/// One `--KEY VALUE` pair, in command-line order.
#[derive(Debug, Clone, PartialEq)]
pub struct CliValue {
    pub key: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

fn is_flag(token: &str) -> bool {
    token.len() > 2
        && token.starts_with("--")
        && token[2..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// Net bracket depth change of a token; quotes are honoured so `"a[b"` does not count.
fn depth_change(token: &str) -> i64 {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for c in token.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Finds `key:value` written without a space inside a flow mapping, which YAML would silently read as
/// one string key (`{lr:0.1}` is the map `{"lr:0.1": null}`): almost always a typo.
fn colon_without_space(value: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut brace_depth = 0usize;
    let chars: Vec<char> = value.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{') => brace_depth += 1,
            (None, '}') => brace_depth = brace_depth.saturating_sub(1),
            (None, ':') if brace_depth > 0 => {
                let next = chars.get(i + 1).copied();
                if !matches!(next, None | Some(' ' | ',' | '}' | ']')) {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Groups argv tokens into `--KEY VALUE` pairs. A flag with no value is `true`.
pub fn parse(tokens: &[String]) -> Result<Vec<CliValue>, CliError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if !is_flag(token) {
            return Err(CliError(format!(
                "`{token}` is missing \"--\" in front of it (a value must follow a --KEY flag; \
                 to pass a list write it in YAML flow style, e.g. [a, b])"
            )));
        }
        let key = token[2..].to_string();
        i += 1;
        let mut parts: Vec<&str> = Vec::new();
        let mut depth = 0i64;
        while i < tokens.len() {
            let t = tokens[i].as_str();
            if depth == 0 && (is_flag(t) || !parts.is_empty()) {
                break;
            }
            depth += depth_change(t);
            parts.push(t);
            i += 1;
            if depth < 0 {
                return Err(CliError(format!(
                    "bracket imbalance in the value of --{key}: `{}` closes a bracket that was never opened",
                    parts.join(" ")
                )));
            }
        }
        if depth != 0 {
            return Err(CliError(format!(
                "bracket imbalance in the value of --{key}: `{}` opens {depth} bracket(s) that are never closed",
                parts.join(" ")
            )));
        }
        let value = if parts.is_empty() {
            Value::Bool(true)
        } else {
            let text = parts.join(" ");
            if let Some(pos) = colon_without_space(&text) {
                return Err(CliError(format!(
                    "there must be a space after the colon in the value of --{key}: `{text}` (position {pos}); \
                     write `key: value`"
                )));
            }
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
        let got = parse(&toks("--lr 1e-6 --device cuda:0 --name abc")).unwrap();
        assert_eq!(got[0].value.as_f64(), Some(1e-6));
        assert_eq!(got[1].value.as_str(), Some("cuda:0"));
        assert_eq!(got[2].value.as_str(), Some("abc"));
    }

    #[test]
    fn quoted_single_token_values_are_accepted() {
        let got = parse(&["--models".to_string(), "{trunk: {MLP: null}}".to_string()]).unwrap();
        assert_eq!(got[0].value, yaml("{trunk: {MLP: null}}"));
    }

    #[test]
    fn errors_quote_the_token() {
        let e = parse(&toks("val --x 1")).unwrap_err().0;
        assert!(e.contains("`val` is missing \"--\""), "{e}");
        let e = parse(&toks("--x 1 2")).unwrap_err().0;
        assert!(e.contains("`2` is missing"), "{e}");
        let e = parse(&toks("--x {a: [1, 2}")).unwrap_err().0;
        assert!(e.contains("bracket"), "{e}");
        let e = parse(&toks("--x {a: 1}}")).unwrap_err().0;
        assert!(e.contains("never opened"), "{e}");
        let e = parse(&toks("--x {lr:0.1}")).unwrap_err().0;
        assert!(e.contains("space after the colon"), "{e}");
    }
}
