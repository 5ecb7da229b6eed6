//! Words for messages: a layer as the user wrote it, and the closest name
//! to a typo.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// `Conv2D (8 , (3 , 3))` -> `Conv2D(8, (3, 3))`: the layer as a person
/// writes it.
pub fn layer_text(tokens: &TokenStream) -> String {
    let mut s = String::new();
    write_tokens(tokens.clone(), &mut s);
    s
}

fn write_tokens(tokens: TokenStream, out: &mut String) {
    // Whether a space is needed before the next word.
    let mut after_word = false;
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = delimiters(g.delimiter());
                out.push_str(open);
                write_tokens(g.stream(), out);
                out.push_str(close);
                after_word = true;
            }
            TokenTree::Punct(p) => {
                match p.as_char() {
                    ',' => out.push_str(", "),
                    // `=>` between the layers of a chain in braces.
                    '=' if p.spacing() == Spacing::Joint => out.push_str(" ="),
                    '>' if out.ends_with(" =") => out.push_str("> "),
                    '=' => out.push_str(" = "),
                    c => out.push(c),
                }
                after_word = false;
            }
            other => {
                if after_word {
                    out.push(' ');
                }
                out.push_str(&other.to_string());
                after_word = true;
            }
        }
    }
}

fn delimiters(d: Delimiter) -> (&'static str, &'static str) {
    match d {
        Delimiter::Parenthesis => ("(", ")"),
        Delimiter::Bracket => ("[", "]"),
        Delimiter::Brace => ("{ ", " }"),
        Delimiter::None => ("", ""),
    }
}

/// The candidate closest to `name` (ignoring case), if it is a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `` `a`, `b`, `c` ``.
pub fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn writes_layers_as_people_do() {
        let t = quote!(Conv2D(8, (3, 3), padding = same));
        assert_eq!(layer_text(&t), "Conv2D(8, (3, 3), padding = same)");
        assert_eq!(layer_text(&quote!({ block })), "{ block }");
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["Dense", "Dropout", "padding"];
        assert_eq!(suggest("Dence", names), Some("Dense"));
        assert_eq!(suggest("paddding", names), Some("padding"));
        assert_eq!(suggest("UpSampling2D", names), None);
    }
}
