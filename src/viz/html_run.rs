//! The parts of the HTML report that cover the whole run rather than one step: the legend
//! of every shading ("How to read"), the text shaded by surprise, the logit lens over
//! every position, the per-layer mean attention maps of a model with many heads, and the
//! table of contents.

use super::html::escape_html;
use super::lens::{LogitLens, TokenSurprise};
use super::record::AttentionMap;
use super::terminal::visible_token;

/// Models with more heads than this show, per step and over the run, each layer's mean
/// attention map instead of every head's (GPT-2 124M has 144 heads); `--attention L.H`
/// still shows the chosen head in full.
pub const FULL_MAPS_UP_TO_HEADS: usize = 16;

/// A token's visible text, HTML-escaped.
fn html_token(text: &str) -> String {
    escape_html(&visible_token(text))
}

/// The legend of every shading in the report, once, before the steps.
pub(super) fn how_to_read(n_vocab: usize, mean_maps: bool) -> String {
    let uniform = (n_vocab.max(2) as f64).log2();
    let maps = if mean_maps {
        format!(
            "The model has more than {FULL_MAPS_UP_TO_HEADS} heads, so each step shows each \
             layer's <em>mean</em> map over its heads; choose one head with <code>--attention \
             L.H</code> to see it in full."
        )
    } else {
        String::new()
    };
    format!(
        "<section id=\"how\">\n<h2>How to read this report</h2>\n<dl class=\"legend\">\n\
         <dt>Attention maps</dt><dd>Rows: queries (the positions run that step); columns: \
         keys; blank: the masked future. Shade: the weight, \
         <span class=\"swatch\" style=\"background:linear-gradient(to right,#fff,#1f4e9c)\"></span> \
         0 to 1; hover a cell for its value. {maps}</dd>\n\
         <dt>Probability bars</dt><dd>Bar length: the probability of each candidate next \
         token; ▶ marks the one chosen.</dd>\n\
         <dt>Surprise</dt><dd>Each token shaded by its surprisal −log₂ p in bits, \
         <span class=\"swatch\" style=\"background:linear-gradient(to right,#fff,#d62728)\"></span> \
         0 to {uniform:.1} bits (a uniform guess over {n_vocab} tokens) and beyond; hover a \
         token for its 5 most likely alternatives.</dd>\n\
         <dt>Logit lens</dt><dd>Each layer's residual stream put through ln_f and the \
         embedding: the top token at each (layer, position), shaded by its probability \
         <span class=\"swatch\" style=\"background:linear-gradient(to right,#fff,#2ca02c)\"></span> \
         0 to 1. The last row is the model's real prediction for the next position.</dd>\n\
         <dt>Tokens</dt><dd>␣ is a space, ↵ a newline, &lt;0xE2&gt; one byte of a \
         character split between tokens.</dd>\n</dl>\n</section>\n"
    )
}

/// The navigation bar under the summary.
pub(super) fn nav() -> &'static str {
    "<nav><a href=\"#how\">How to read</a> · <a href=\"#step-1\">Steps</a> · \
     <a href=\"#surprise\">Surprise</a> · <a href=\"#lens\">Logit lens</a> · \
     <a href=\"#tokens\">Tokens</a> · <a href=\"#run\">All steps together</a> · \
     <a href=\"#contents\">Contents</a></nav>\n"
}

/// The contents at the end: every step and every layer's maps over the run.
pub(super) fn contents(n_steps: usize, layers: &[usize]) -> String {
    let steps: Vec<String> =
        (1..=n_steps).map(|s| format!("<a href=\"#step-{s}\">{s}</a>")).collect();
    let layers: Vec<String> =
        layers.iter().map(|l| format!("<a href=\"#layer-{l}\">{l}</a>")).collect();
    format!(
        "<section id=\"contents\">\n<h2>Contents</h2>\n<p>Steps: {}</p>\n<p>Layers (attention \
         over the run): {}</p>\n<p><a href=\"#how\">How to read</a> · <a href=\"#surprise\">\
         Surprise</a> · <a href=\"#lens\">Logit lens</a> · <a href=\"#tokens\">Tokens</a></p>\n\
         </section>\n",
        steps.join(" "),
        layers.join(" ")
    )
}

/// The text shaded by surprise: each token a span whose red is its bits over a uniform
/// guess's, with its bits, probability and 5 alternatives in its `title`.
pub(super) fn surprise_section(
    texts: &[String],
    surprise: &[TokenSurprise],
    n_vocab: usize,
) -> String {
    let uniform = (n_vocab.max(2) as f64).log2();
    let mut spans = Vec::with_capacity(texts.len());
    if let Some(first) = texts.first() {
        let title = "position 0: the first token, which nothing predicts";
        spans.push(format!("<span class=\"s\" title=\"{title}\">{}</span>", html_token(first)));
    }
    for s in surprise {
        let text = texts.get(s.position).map_or("?", String::as_str);
        let alternatives: Vec<String> =
            s.alternatives.iter().map(|(t, p)| format!("{} {p:.3}", visible_token(t))).collect();
        let title = format!(
            "position {}: {:.2} bits (p = {:.4}); most likely: {}",
            s.position,
            s.bits,
            s.probability,
            alternatives.join(", ")
        );
        let alpha = (s.bits / uniform).clamp(0.0, 1.0);
        spans.push(format!(
            "<span class=\"s\" data-bits=\"{:.3}\" style=\"background:rgba(214,39,40,{alpha:.2})\" \
             title=\"{}\">{}</span>",
            s.bits,
            escape_html(&title),
            html_token(text)
        ));
    }
    format!(
        "<section id=\"surprise\">\n<h2>Surprise</h2>\n<p class=\"surprise\">{}</p>\n</section>\n",
        spans.join("")
    )
}

/// The logit lens over every position of the run, as a table: one column per position,
/// one row per layer's residual stream.
pub(super) fn lens_section(columns: &[Vec<(String, f64)>], texts: &[String]) -> String {
    if columns.is_empty() {
        return "<section id=\"lens\">\n<h2>Logit lens</h2>\n<p class=\"note\">Not recorded \
                (ExplainOptions::lens; the command line records it for --html and --lens).</p>\n\
                </section>\n"
            .into();
    }
    let n_rows = columns.first().map_or(0, Vec::len);
    let header: Vec<String> = (0..columns.len())
        .map(|p| format!("<th>{p} {}</th>", texts.get(p).map_or("?".into(), |t| html_token(t))))
        .collect();
    let mut rows = vec![format!("<tr><th></th>{}</tr>", header.join(""))];
    for row in 0..n_rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|column| {
                let (text, p) = &column[row];
                let title = format!("{}: {} {p:.4}", LogitLens::row_label(row), visible_token(text));
                format!(
                    "<td style=\"background:rgba(44,160,44,{p:.2})\" title=\"{}\">{}<br><small>{}</small></td>",
                    escape_html(&title),
                    html_token(text),
                    short_number(*p)
                )
            })
            .collect();
        rows.push(format!("<tr><th>{}</th>{}</tr>", LogitLens::row_label(row), cells.join("")));
    }
    format!(
        "<section id=\"lens\">\n<h2>Logit lens</h2>\n<div class=\"wide\"><table class=\"lens\">\n{}\n\
         </table></div>\n</section>\n",
        rows.join("\n")
    )
}

/// A number in `[0, 1]` in three characters at most: `.58`, `1`, `0`.
pub(super) fn short_number(x: f64) -> String {
    let hundredths = (x.clamp(0.0, 1.0) * 100.0).round() as u32; // NaN -> 0
    match hundredths {
        100 => "1".into(),
        0 => "0".into(),
        h => format!(".{h:02}"),
    }
}

/// Each layer's mean map over its heads' maps in `maps` (those of one layer share a shape).
pub(super) fn layer_means(maps: &[AttentionMap]) -> Vec<AttentionMap> {
    let mut means: Vec<(AttentionMap, usize)> = Vec::new();
    for map in maps {
        match means.iter_mut().find(|(m, _)| m.head.layer == map.head.layer) {
            Some((mean, n)) if mean.weights.len() == map.weights.len() => {
                mean.weights.iter_mut().zip(&map.weights).for_each(|(a, b)| *a += b);
                *n += 1;
            }
            Some(_) => {}
            None => means.push((map.clone(), 1)),
        }
    }
    means
        .into_iter()
        .map(|(mut mean, n)| {
            mean.weights.iter_mut().for_each(|w| *w /= n as f32);
            mean
        })
        .collect()
}

/// `"layer 3, mean of 12 heads, step 2"` (the map's own title says "head 0").
pub(super) fn mean_title(map: &AttentionMap, n_head: usize) -> String {
    let title = map.title();
    let rest = title.split_once(", ").map_or("", |(_, rest)| rest);
    let rest = rest.split_once(", ").map_or(rest, |(_, rest)| rest);
    format!("layer {}, mean of {n_head} heads, {rest}", map.head.layer)
}

/// Keeps the label/number formatting in one place for the attention cells too.
pub(super) fn weight_label(weight: f32) -> String {
    short_number(f64::from(weight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_fit_three_characters() {
        assert_eq!(short_number(0.58), ".58");
        assert_eq!(short_number(0.999), "1");
        assert_eq!(short_number(0.001), "0");
        assert_eq!(short_number(0.05), ".05");
    }
}
