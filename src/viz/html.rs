//! The HTML report: one self-contained HTML5 page (inline CSS and SVG, no script, nothing
//! fetched) holding a whole recorded generation: the tokens, then for every step its
//! probability bars, its attention maps ([`super::svg`]) and the cache's fill, then every
//! head's attention over the run.

use std::path::Path;

use super::record::{AttentionMap, CacheFill, Explanation, StepView};
use super::svg::svg_attention;
use super::terminal::{
    chosen_label, distribution_caption, format_bytes, quoted_tail, visible_token,
};
use crate::error::{Error, Result};
use crate::generate::{Decoding, StopReason};

/// Pixels of a probability bar at probability 1, and of a full cache bar.
const BAR_PX: f64 = 300.0;

/// The report's style sheet: system fonts only, nothing loaded.
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;color:#222;margin:2em;max-width:90em}
.token{font-family:ui-monospace,monospace;border:1px solid #999;border-radius:3px;padding:0 .3em;margin:.1em;display:inline-block}
.prompt{background:#eee}
.generated{background:#d7ecff;border-color:#3a7bd5}
.step{border-top:1px solid #ccc;margin-top:2em}
table td{padding:.1em .6em;font-family:ui-monospace,monospace}
td.num{text-align:right}
.bar{display:inline-block;height:.8em;background:#3a7bd5}
.free{display:inline-block;height:.8em;background:#ddd}
tr.chosen td{font-weight:bold}
tr.other td{color:#666}
.maps{display:flex;flex-wrap:wrap;gap:1.5em}
figure{margin:0}
figcaption{font-size:.9em}
svg.map text{font:10px ui-monospace,monospace;pointer-events:none}
svg.map rect{fill:#1f4e9c;stroke:#bbb;stroke-width:.5}
svg.map text.light{fill:#fff}
.note{color:#555;font-size:.9em}";

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, safe in HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A token's visible text ([`visible_token`]), HTML-escaped.
fn html_token(text: &str) -> String {
    escape_html(&visible_token(text))
}

/// One self-contained HTML5 page showing a recorded generation: the tokens (prompt and
/// generated told apart), then for every step the next-token probabilities as bars (every
/// row carries its probability in `data-p`; the kept candidates and the "other" row sum to
/// 1), every recorded head's attention map as an SVG grid (`<figure class="attention"
/// data-layer=".." data-head="..">`, cells shaded by weight, the masked future left empty,
/// each weight in a tooltip) and the KV cache's fill per layer; last, every head's
/// attention over the whole run, stacked. Inline CSS and SVG only: no script, nothing
/// fetched. All token text is HTML-escaped.
pub fn html_report(explanation: &Explanation) -> String {
    let mut body = vec![
        "<h1>Inside one generation</h1>".to_string(),
        html_summary(explanation),
        html_tokens(explanation),
    ];
    body.extend(explanation.steps.iter().map(html_step));
    body.push(html_run_overview(explanation));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>gpt2-edu: inside one generation</title>\n<style>\n{STYLE}\n</style>\n</head>\n\
         <body>\n{}\n</body>\n</html>\n",
        body.join("\n")
    )
}

/// Writes [`html_report`] to `path`. A path that cannot be written is an [`Error::Io`]
/// naming it.
pub fn write_html_report(explanation: &Explanation, path: &Path) -> Result<()> {
    std::fs::write(path, html_report(explanation)).map_err(|error| Error::Io {
        path: path.display().to_string(),
        kind: error.kind(),
        message: format!("writing the HTML report failed: {error}"),
    })
}

/// The model's sizes and how the text was generated.
fn html_summary(explanation: &Explanation) -> String {
    let hp = &explanation.hparams;
    let config = &explanation.config;
    let decoding = match config.decoding {
        Decoding::Cached => "cached decoding (KV cache)",
        Decoding::FullRecompute => "full recomputation (every position rerun at every step)",
    };
    let stop =
        explanation.stop_reason.as_ref().map_or("still running".to_string(), StopReason::to_string);
    format!(
        "<p class=\"summary\">Model: n_layer {}, n_head {}, n_embd {}, n_vocab {}, n_ctx {}. \
         {decoding}; probabilities shown: {}. Stopped: {}.</p>",
        hp.n_layer,
        hp.n_head,
        hp.n_embd,
        hp.n_vocab,
        hp.n_ctx,
        escape_html(&distribution_caption(&config.sampling)),
        escape_html(&stop)
    )
}

/// Every token as a box, prompt and generated told apart, then the whole text.
fn html_tokens(explanation: &Explanation) -> String {
    let boxes: Vec<String> = explanation
        .token_texts
        .iter()
        .enumerate()
        .map(|(position, text)| {
            let kind = if explanation.is_prompt(position) { "prompt" } else { "generated" };
            let id = explanation.tokens.get(position).copied().unwrap_or(0);
            format!(
                "<span class=\"token {kind}\" data-pos=\"{position}\" title=\"position {position}, id {id}, {kind}\">{}</span>",
                html_token(text)
            )
        })
        .collect();
    format!(
        "<section class=\"tokens\">\n<h2>Tokens</h2>\n<p>{}</p>\n\
         <p class=\"note\"><span class=\"token prompt\">prompt</span> \
         <span class=\"token generated\">generated</span> \
         (␣ is a space, ↵ a newline)</p>\n<pre>{}</pre>\n</section>",
        boxes.join(" "),
        escape_html(&explanation.text)
    )
}

/// One step: its probabilities, its attention maps and the cache.
fn html_step(step: &StepView) -> String {
    let maps: Vec<String> = step
        .attention
        .iter()
        .map(|map| html_attention_figure(map, &step.seen, "attention"))
        .collect();
    format!(
        "<section class=\"step\" data-step=\"{}\">\n<h2>Step {}: after {} → {}</h2>\n\
         <h3>Next-token probabilities</h3>\n<p class=\"note\">{}</p>\n{}\n\
         <h3>Attention</h3>\n<p class=\"note\">Rows: queries; columns: keys; blank: the masked \
         future. Darker means more weight; hover a cell for its weight.</p>\n\
         <div class=\"maps\">\n{}\n</div>\n<h3>KV cache</h3>\n{}\n</section>",
        step.number,
        step.number,
        escape_html(&quoted_tail(&step.seen_text, 60)),
        escape_html(&chosen_label(step)),
        escape_html(&distribution_caption(&step.sampling)),
        html_candidates(step),
        maps.join("\n"),
        html_cache(&step.cache)
    )
}

/// The step's candidates as a table of bars, then the "other" row.
fn html_candidates(step: &StepView) -> String {
    let mut rows: Vec<String> = step
        .candidates
        .iter()
        .map(|c| {
            let chosen = Some(c.id) == step.chosen;
            let class = if chosen { "candidate chosen" } else { "candidate" };
            let marker = if chosen { "▶" } else { "" };
            html_probability_row(class, c.probability, marker, &html_token(&c.text))
        })
        .collect();
    let n_other = step.n_vocab.saturating_sub(step.candidates.len());
    if n_other > 0 {
        let label = format!("({n_other} other tokens)");
        rows.push(html_probability_row("other", step.other_probability, "", &label));
    }
    format!("<table class=\"candidates\">\n{}\n</table>", rows.join("\n"))
}

/// `<tr class=.. data-p=..>`: marker, (escaped) label, probability, bar.
fn html_probability_row(class: &str, p: f64, marker: &str, label: &str) -> String {
    format!(
        "<tr class=\"{class}\" data-p=\"{p}\"><td>{marker}</td><td>{label}</td>\
         <td class=\"num\">{p:.4}</td><td><span class=\"bar\" style=\"width:{:.1}px\"></span></td></tr>",
        p.clamp(0.0, 1.0) * BAR_PX
    )
}

/// The cache's fill per layer, as a table of bars.
fn html_cache(fill: &CacheFill) -> String {
    if fill.capacity == 0 {
        return "<p class=\"note\">No KV cache (capacity 0).</p>".into();
    }
    let rows: Vec<String> = fill
        .layers
        .iter()
        .enumerate()
        .map(|(layer, l)| {
            let used = l.positions as f64 / fill.capacity as f64 * BAR_PX;
            format!(
                "<tr class=\"cache-layer\" data-layer=\"{layer}\"><td>layer {layer}</td>\
                 <td class=\"num\">{} / {}</td><td><span class=\"bar\" style=\"width:{used:.1}px\">\
                 </span><span class=\"free\" style=\"width:{:.1}px\"></span></td>\
                 <td class=\"num\">{} of {}</td></tr>",
                l.positions,
                fill.capacity,
                BAR_PX - used,
                format_bytes(l.bytes),
                format_bytes(l.capacity_bytes)
            )
        })
        .collect();
    format!("<table class=\"cache\">\n{}\n</table>", rows.join("\n"))
}

/// Every recorded head's attention over the whole run ([`Explanation::attention_over_run`]).
fn html_run_overview(explanation: &Explanation) -> String {
    let maps: Vec<String> = explanation
        .heads
        .iter()
        .filter_map(|&head| explanation.attention_over_run(head))
        .map(|map| html_attention_figure(&map, &explanation.token_texts, "attention-run"))
        .collect();
    format!(
        "<section class=\"run\">\n<h2>All steps together</h2>\n<p class=\"note\">Each \
         position's query row, from the step that ran it, stacked: the triangle a full \
         recomputation would compute at the last step.</p>\n<div class=\"maps\">\n{}\n</div>\n\
         </section>",
        maps.join("\n")
    )
}

/// `<figure class="{class}" data-layer data-head>`: a caption and the SVG grid.
fn html_attention_figure(map: &AttentionMap, labels: &[String], class: &str) -> String {
    format!(
        "<figure class=\"{class}\" data-layer=\"{}\" data-head=\"{}\">\
         <figcaption>{}</figcaption>\n{}\n</figure>",
        map.head.layer,
        map.head.head,
        escape_html(&map.title()),
        svg_attention(map, labels)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(escape_html("<UNK> & \"x\" 'y'"), "&lt;UNK&gt; &amp; &quot;x&quot; &#39;y&#39;");
    }
}
