//! Translations: every string the user sees comes from the Fluent files in
//! `po/<locale>/phyllome.ftl` (compiled into the binary), in the locale the environment asks
//! for (`LC_ALL`, `LC_MESSAGES`, `LANG`, then `LANGUAGE`'s first choice), falling back to
//! en-US key by key. The tests check that every locale has exactly en-US's keys and
//! variables, and that every key the code asks for exists.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use std::sync::OnceLock;
use unic_langid::LanguageIdentifier;

/// The locales shipped, with their Fluent source; the first is the reference and fallback.
pub const LOCALES: &[(&str, &str)] = &[
    ("en-US", include_str!("../../po/en-US/phyllome.ftl")),
    ("fr", include_str!("../../po/fr/phyllome.ftl")),
    ("de", include_str!("../../po/de/phyllome.ftl")),
];

/// One locale's messages, with en-US behind them.
pub struct Translator {
    locale: &'static str,
    bundle: FluentBundle<FluentResource>,
    fallback: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Translator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator")
            .field("locale", &self.locale)
            .finish_non_exhaustive()
    }
}

/// A bundle of one shipped locale. The files are ours and checked by the tests; a syntax
/// error still only loses the messages it touches.
fn bundle(tag: &str, source: &str) -> FluentBundle<FluentResource> {
    let id: LanguageIdentifier = tag.parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // No Unicode isolation marks around arguments: GTK lays out mixed directions itself.
    bundle.set_use_isolating(false);
    let resource =
        FluentResource::try_new(source.to_owned()).unwrap_or_else(|(partial, _)| partial);
    let _ = bundle.add_resource(resource);
    bundle
}

/// Which shipped locale serves a POSIX locale name such as `fr_FR.UTF-8` or `de`.
pub fn pick_locale(posix: &str) -> &'static str {
    let base = posix.split(['.', '@']).next().unwrap_or_default();
    let language = base
        .split(['_', '-'])
        .next()
        .unwrap_or_default()
        .to_lowercase();
    LOCALES
        .iter()
        .map(|(tag, _)| *tag)
        .find(|tag| tag.split('-').next() == Some(language.as_str()))
        .unwrap_or(LOCALES[0].0)
}

/// The locale the environment asks for, as POSIX does (`C` and `POSIX` mean the default).
fn environment_locale() -> String {
    for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                if v == "C" || v == "POSIX" || v.starts_with("C.") {
                    break;
                }
                return v;
            }
        }
    }
    std::env::var("LANGUAGE")
        .ok()
        .and_then(|l| l.split(':').next().map(str::to_owned))
        .unwrap_or_default()
}

impl Translator {
    /// The messages of the shipped locale closest to `posix`.
    pub fn for_locale(posix: &str) -> Self {
        let locale = pick_locale(posix);
        let source = LOCALES
            .iter()
            .find(|(tag, _)| *tag == locale)
            .map_or(LOCALES[0].1, |(_, s)| *s);
        Self {
            locale,
            bundle: bundle(locale, source),
            fallback: bundle(LOCALES[0].0, LOCALES[0].1),
        }
    }

    /// The shipped locale in use.
    pub fn locale(&self) -> &'static str {
        self.locale
    }

    /// Message `key` with `args`; en-US where this locale lacks it, the key itself where
    /// nobody has it (the tests make sure that never ships).
    pub fn get_args(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            // Whole numbers go in as numbers, so that plural variants ([one], [other]) apply.
            match value.parse::<i64>() {
                Ok(n) => fluent_args.set(*name, n),
                Err(_) => fluent_args.set(*name, *value),
            }
        }
        for bundle in [&self.bundle, &self.fallback] {
            if let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) {
                let mut errors = Vec::new();
                return bundle
                    .format_pattern(pattern, Some(&fluent_args), &mut errors)
                    .into_owned();
            }
        }
        key.to_owned()
    }

    /// Message `key`.
    pub fn get(&self, key: &str) -> String {
        self.get_args(key, &[])
    }
}

/// The app's translator, from the environment, made on first use.
pub fn translator() -> &'static Translator {
    static GLOBAL: OnceLock<Translator> = OnceLock::new();
    GLOBAL.get_or_init(|| Translator::for_locale(&environment_locale()))
}

/// Message `key` in the user's language.
pub fn tr(key: &str) -> String {
    translator().get(key)
}

/// Message `key` with arguments, in the user's language.
pub fn tr_args(key: &str, args: &[(&str, &str)]) -> String {
    translator().get_args(key, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Each message's id and the variables its text uses.
    fn messages(source: &str) -> BTreeMap<String, BTreeSet<String>> {
        let resource = match FluentResource::try_new(source.to_owned()) {
            Ok(r) => r,
            Err((_, errors)) => panic!("syntax errors: {errors:?}"),
        };
        let mut out = BTreeMap::new();
        for entry in resource.entries() {
            if let fluent_syntax::ast::Entry::Message(m) = entry {
                let mut vars = BTreeSet::new();
                if let Some(pattern) = &m.value {
                    for element in &pattern.elements {
                        if let fluent_syntax::ast::PatternElement::Placeable {
                            expression:
                                fluent_syntax::ast::Expression::Inline(
                                    fluent_syntax::ast::InlineExpression::VariableReference { id },
                                ),
                        } = element
                        {
                            vars.insert(id.name.to_owned());
                        }
                    }
                }
                assert!(m.value.is_some(), "{} has no text", m.id.name);
                out.insert(m.id.name.to_owned(), vars);
            }
        }
        out
    }

    #[test]
    fn every_locale_has_exactly_the_reference_keys_and_variables() {
        let reference = messages(LOCALES[0].1);
        assert!(!reference.is_empty());
        for (tag, source) in &LOCALES[1..] {
            let these = messages(source);
            let missing: Vec<_> = reference
                .keys()
                .filter(|k| !these.contains_key(*k))
                .collect();
            let extra: Vec<_> = these
                .keys()
                .filter(|k| !reference.contains_key(*k))
                .collect();
            assert!(missing.is_empty(), "{tag} lacks {missing:?}");
            assert!(extra.is_empty(), "{tag} has keys en-US does not: {extra:?}");
            for (key, vars) in &reference {
                assert_eq!(&these[key], vars, "{tag}: {key} uses other variables");
            }
        }
    }

    /// The keys the code asks for: the string literal after each `tr(` and `tr_args(`.
    fn keys_used_in(dir: &std::path::Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                keys_used_in(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("i18n.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for call in ["tr(", "tr_args("] {
                for (i, _) in text.match_indices(call) {
                    // Not the tail of a longer name (`attr("...`).
                    let before = text[..i].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    // The key may be on the next line, after rustfmt.
                    let Some(rest) = text[i + call.len()..].trim_start().strip_prefix('"') else {
                        continue;
                    };
                    if let Some(end) = rest.find('"') {
                        out.insert(rest[..end].to_owned());
                    }
                }
            }
        }
    }

    #[test]
    fn every_key_the_code_uses_is_defined() {
        let mut used = BTreeSet::new();
        keys_used_in(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut used,
        );
        assert!(used.len() > 10, "the scan found the calls: {used:?}");
        let reference = messages(LOCALES[0].1);
        let undefined: Vec<_> = used
            .iter()
            .filter(|k| !reference.contains_key(*k))
            .collect();
        assert!(undefined.is_empty(), "used but not in en-US: {undefined:?}");
    }

    #[test]
    fn the_environment_picks_the_locale_and_missing_keys_fall_back() {
        assert_eq!(pick_locale("fr_FR.UTF-8"), "fr");
        assert_eq!(pick_locale("de_AT@euro"), "de");
        assert_eq!(pick_locale("de"), "de");
        assert_eq!(pick_locale("en_GB.UTF-8"), "en-US");
        assert_eq!(pick_locale("ja_JP.UTF-8"), "en-US");
        assert_eq!(pick_locale(""), "en-US");
        let fr = Translator::for_locale("fr_CA.UTF-8");
        assert_eq!(fr.get("display-reconnect"), "Se reconnecter");
        assert_eq!(
            fr.get_args("display-window-title", &[("name", "Debian")]),
            "Debian – Phyllome"
        );
        let en = Translator::for_locale("C.UTF-8");
        assert!(en
            .get_args("quit-running-body", &[("count", "1")])
            .starts_with("One virtual machine is"));
        assert!(en
            .get_args("quit-running-body", &[("count", "3")])
            .starts_with("3 virtual machines are"));
        assert_eq!(
            fr.get_args("tray-running-count", &[("count", "1")]),
            "Une machine virtuelle tourne"
        );
        let de = Translator::for_locale("de_DE.UTF-8");
        assert_eq!(de.get("display-lost"), "Die Anzeige ging verloren");
        assert_eq!(de.get("no-such-key"), "no-such-key");
    }
}
