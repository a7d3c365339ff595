//! The HTML report: one self-contained HTML5 page (inline CSS and SVG, no script, nothing
//! fetched) holding a whole recorded generation: the model and how it generated, then for
//! every step its probability bars, its attention maps ([`super::svg`]) and the cache's
//! fill, then the tokens and the whole text, and last every head's attention over the run.
//!
//! The page is written as the generation goes ([`HtmlReport`]), each step's section as soon
//! as the step is recorded and each attention map as soon as it is drawn, so it never holds
//! the page: only one map's SVG and the overview's stacked weights (4 bytes per visible
//! weight). A 144-head model at 200 positions writes a 1.1 GB page in 35 MB of memory.

use std::borrow::Borrow;
use std::io::{self, Write};

use super::html_run::{
    FULL_MAPS_UP_TO_HEADS, contents, how_to_read, layer_means, lens_section, mean_title, nav,
    surprise_section,
};
use super::lens::{LogitLens, TokenSurprise};
use super::record::{AttentionMap, CacheFill, Explanation, HeadId, StepView};
use super::svg::svg_attention;
use super::terminal::{
    chosen_label, distribution_caption, format_bytes, quoted_tail, visible_token,
};
use crate::generate::{Decoding, GenerateConfig, StopReason};
use crate::hparams::HParams;

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
.note{color:#555;font-size:.9em}
svg.map text.w{font-size:9px}
nav{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ccc}
.legend dt{font-weight:bold;margin-top:.4em}
.swatch{display:inline-block;width:6em;height:.8em;border:1px solid #999;vertical-align:middle}
.surprise{font-family:ui-monospace,monospace;line-height:1.9}
.surprise .s{border-right:1px solid #ddd;padding:0 1px}
.wide{overflow-x:auto}
table.lens{border-collapse:collapse}
table.lens td,table.lens th{font:11px ui-monospace,monospace;border:1px solid #ddd;width:5.5em;max-width:5.5em;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;text-align:center;padding:1px}
table.lens th{background:#f4f4f4}";

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

/// One self-contained HTML5 page showing a recorded generation: the model and how it
/// generated; for every step the next-token probabilities as bars (every row carries its
/// probability in `data-p`; the kept candidates and the "other" row sum to 1), every
/// recorded head's attention map as an SVG grid (`<figure class="attention"
/// data-layer=".." data-head="..">`, cells shaded by weight, the masked future left empty,
/// each weight in a tooltip) and the KV cache's fill per layer; then the tokens (prompt and
/// generated told apart), the whole text and why it stopped; last, every head's attention
/// over the whole run, stacked. Inline CSS and SVG only: no script, nothing fetched. All
/// token text is HTML-escaped. The same page as [`write_html_report`] and [`HtmlReport`].
pub fn html_report(explanation: &Explanation) -> String {
    let mut page = Vec::new();
    // Writing to a Vec<u8> cannot fail: it grows (or the allocation aborts).
    write_html_report(explanation, &mut page).ok();
    String::from_utf8_lossy(&page).into_owned() // UTF-8 already: written from &strs
}

/// Writes [`html_report`] to `out`, one section at a time; an error is `out`'s. For a run
/// too long to hold, record and write step by step with [`HtmlReport`] instead.
pub fn write_html_report(explanation: &Explanation, out: impl Write) -> io::Result<()> {
    let mut report =
        HtmlReport::start(out, &explanation.hparams, &explanation.config, &explanation.heads)?;
    for step in &explanation.steps {
        report.step(step)?;
    }
    report.finish(explanation).map(drop)
}

/// The HTML report, written as the generation goes: [`start`](Self::start) writes the
/// page's head and the summary, [`step`](Self::step) each step's section as soon as it is
/// recorded (then the step can be dropped, see [`Recorder::forget_steps`]), and
/// [`finish`](Self::finish) the tokens, the text and every head's attention over the run.
/// It keeps only the overview's weights: per recorded head, each position's visible
/// weights (`n_keys * (n_keys + 1) / 2` floats per head by the end).
///
/// ```
/// use gpt2_edu::generate::{GenerateConfig, TextGenerator};
/// use gpt2_edu::viz::{self, ExplainOptions, HtmlReport, Recorder};
/// use gpt2_edu::{dummy, Model, Trace};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let model = Model::new(hparams, weights).unwrap();
/// let config = GenerateConfig { max_tokens: 3, ..GenerateConfig::default() };
/// let options = ExplainOptions::default();
/// let mut recorder = Recorder::new(&model, &encoder, &config, &options).unwrap();
/// let heads = options.heads.resolve(&model.hparams).unwrap();
/// let mut report = HtmlReport::start(Vec::new(), &model.hparams, &config, &heads).unwrap();
/// let mut text = TextGenerator::new(&model, &encoder, "hello", &config).unwrap();
/// let mut trace = Trace::new();
/// loop {
///     let piece = text.next_text_traced(&mut trace).unwrap();
///     if let Some(step) = recorder.record_step(&trace, text.tokens()).unwrap() {
///         report.step(step).unwrap(); // written now
///     }
///     recorder.forget_steps(); // and no longer held
///     trace.clear();
///     if piece.is_none() {
///         break;
///     }
/// }
/// let page = report.finish(&recorder.finish(text.tokens()).unwrap()).unwrap();
/// let page = String::from_utf8(page).unwrap();
/// assert!(page.contains("<pre>hello world world world</pre>"));
/// ```
///
/// [`Recorder::forget_steps`]: super::Recorder::forget_steps
pub struct HtmlReport<W: Write> {
    out: W,
    /// Whether each layer's mean map stands for its heads' (more than
    /// [`FULL_MAPS_UP_TO_HEADS`] recorded heads).
    mean_maps: bool,
    n_head: usize,
    n_vocab: usize,
    /// Every token's surprise so far.
    surprise: Vec<TokenSurprise>,
    /// The logit lens so far, one column per position: each row's top token and probability.
    lens: Vec<Vec<(String, f64)>>,
    /// Each recorded head's query rows so far, in [`HtmlReport::start`]'s order.
    stacked: Vec<StackedRows>,
    /// Keys of the last step written: the positions the overview must cover.
    last_n_keys: usize,
    /// Steps written.
    n_steps: usize,
}

/// One head's query rows over the run, each from the step that ran it: row `p` holds the
/// `p + 1` weights position `p` gives the keys it sees (the masked future is not stored).
struct StackedRows {
    head: HeadId,
    weights: Vec<f32>,
    n_rows: usize,
}

impl<W: Write> HtmlReport<W> {
    /// Writes the page's head and the summary of a generation of a model with `hparams`,
    /// run with `config`, whose `heads` are recorded (the overview shows those).
    pub fn start(
        mut out: W,
        hparams: &HParams,
        config: &GenerateConfig,
        heads: &[HeadId],
    ) -> io::Result<Self> {
        write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>gpt2-edu: inside one generation</title>\n<style>\n{STYLE}\n</style>\n</head>\n\
             <body>\n<h1>Inside one generation</h1>\n{}\n",
            html_summary(hparams, config)
        )?;
        let mean_maps = heads.len() > FULL_MAPS_UP_TO_HEADS;
        write!(out, "{}{}", nav(), how_to_read(hparams.n_vocab, mean_maps))?;
        let mut shown: Vec<HeadId> = heads.to_vec();
        if mean_maps {
            shown.dedup_by_key(|head| head.layer); // one mean map per layer
        }
        let stacked = shown
            .iter()
            .map(|&head| StackedRows { head, weights: Vec::new(), n_rows: 0 })
            .collect();
        Ok(Self {
            out,
            mean_maps,
            n_head: hparams.n_head,
            n_vocab: hparams.n_vocab,
            surprise: Vec::new(),
            lens: Vec::new(),
            stacked,
            last_n_keys: 0,
            n_steps: 0,
        })
    }

    /// Writes `step`'s section, and keeps its new query rows for the overview.
    pub fn step(&mut self, step: &StepView) -> io::Result<()> {
        let maps =
            if self.mean_maps { layer_means(&step.attention) } else { step.attention.clone() };
        let (mean_maps, n_head) = (self.mean_maps, self.n_head);
        write_step(&mut self.out, step, &maps, &|map| caption(map, mean_maps, n_head))?;
        self.surprise.extend(step.surprise.iter().cloned());
        if let Some(lens) = &step.lens {
            self.take_lens_columns(lens);
        }
        for map in &maps {
            if let Some(rows) = self.stacked.iter_mut().find(|rows| rows.head == map.head) {
                rows.take_new_rows(map);
            }
        }
        self.last_n_keys = step.attention.first().map_or(self.last_n_keys, |map| map.n_keys);
        self.n_steps += 1;
        Ok(())
    }

    /// Writes the tokens, the whole text and why it stopped (from `run`, whose `steps` are
    /// not read: they were given to [`step`](Self::step)), then every head's attention
    /// over the run, and ends the page. Returns the writer.
    pub fn finish(mut self, run: &Explanation) -> io::Result<W> {
        let texts = &run.token_texts;
        write!(self.out, "{}", surprise_section(texts, &self.surprise, self.n_vocab))?;
        write!(self.out, "{}", lens_section(&self.lens, texts))?;
        writeln!(self.out, "{}", html_tokens(run))?;
        write!(
            self.out,
            "<section class=\"run\" id=\"run\">\n<h2>All steps together</h2>\n<p class=\"note\">Each \
             position's query row, from the step that ran it, stacked: the triangle a full \
             recomputation would compute at the last step.</p>\n<div class=\"maps\">\n"
        )?;
        let (n_keys, n_steps) = (self.last_n_keys, self.n_steps);
        let mut layers: Vec<usize> = self.stacked.iter().map(|rows| rows.head.layer).collect();
        layers.dedup();
        // A head some step did not record has no overview; each map is built when drawn.
        let maps = std::mem::take(&mut self.stacked)
            .into_iter()
            .filter_map(|rows| rows.into_map(n_keys, n_steps));
        let (mean_maps, n_head) = (self.mean_maps, self.n_head);
        let caption = |map: &AttentionMap| caption(map, mean_maps, n_head);
        write_figures(&mut self.out, maps, &run.token_texts, "attention-run", &caption)?;
        write!(self.out, "\n</div>\n</section>\n{}</body>\n</html>\n", contents(n_steps, &layers))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A map's caption: its head's title, or (`mean_maps`) its layer's mean's.
fn caption(map: &AttentionMap, mean_maps: bool, n_head: usize) -> String {
    if mean_maps { mean_title(map, n_head) } else { map.title() }
}

impl<W: Write> HtmlReport<W> {
    /// Appends the lens's columns of the positions not shown yet.
    fn take_lens_columns(&mut self, lens: &LogitLens) {
        let n_positions = lens.rows.first().map_or(0, Vec::len);
        for i in 0..n_positions {
            if lens.first_position + i == self.lens.len() {
                let column = lens.rows.iter().map(|row| (row[i].text.clone(), row[i].probability));
                self.lens.push(column.collect());
            }
        }
    }
}

impl StackedRows {
    /// Appends the rows of `map` that run the next positions (a full recomputation reruns
    /// the earlier ones too: those are skipped, as in [`Explanation::attention_over_run`]).
    fn take_new_rows(&mut self, map: &AttentionMap) {
        for row in 0..map.n_queries {
            let position = map.query_position(row);
            if position != self.n_rows {
                continue;
            }
            self.weights.extend((0..=position).map(|key| map.weight(row, key)));
            self.n_rows += 1;
        }
    }

    /// The stacked rows as a `[n_keys, n_keys]` map, the masked future 0; `None` unless
    /// they cover exactly `n_keys` positions.
    fn into_map(self, n_keys: usize, n_steps: usize) -> Option<AttentionMap> {
        if self.n_rows != n_keys || n_steps == 0 {
            return None;
        }
        let mut weights = Vec::with_capacity(n_keys * n_keys); // [n_keys, n_keys]
        let mut visible = self.weights.iter().copied();
        for position in 0..n_keys {
            weights.extend(visible.by_ref().take(position + 1));
            weights.extend(std::iter::repeat_n(0.0, n_keys - position - 1));
        }
        Some(AttentionMap {
            head: self.head,
            first_step: 1,
            last_step: n_steps,
            n_queries: n_keys,
            n_keys,
            weights,
        })
    }
}

/// The model's sizes and how the text was generated.
fn html_summary(hp: &HParams, config: &GenerateConfig) -> String {
    let decoding = match config.decoding {
        Decoding::Cached => "cached decoding (KV cache)",
        Decoding::FullRecompute => "full recomputation (every position rerun at every step)",
    };
    format!(
        "<p class=\"summary\">Model: n_layer {}, n_head {}, n_embd {}, n_vocab {}, n_ctx {}. \
         {decoding}; probabilities shown: {}.</p>\n<p class=\"note\">The steps follow in the \
         order they ran; after them come the tokens, the whole text and why it stopped, then \
         every head's attention over the run.</p>",
        hp.n_layer,
        hp.n_head,
        hp.n_embd,
        hp.n_vocab,
        hp.n_ctx,
        escape_html(&distribution_caption(&config.sampling)),
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
    let stop =
        explanation.stop_reason.as_ref().map_or("still running".to_string(), StopReason::to_string);
    format!(
        "<section class=\"tokens\">\n<h2 id=\"tokens\">Tokens</h2>\n<p>{}</p>\n\
         <p class=\"note\"><span class=\"token prompt\">prompt</span> \
         <span class=\"token generated\">generated</span> \
         (␣ is a space, ↵ a newline)</p>\n<pre>{}</pre>\n<p class=\"summary\">Stopped: {}.</p>\n\
         </section>",
        boxes.join(" "),
        escape_html(&explanation.text),
        escape_html(&stop)
    )
}

/// One step's section: its probabilities, its attention `maps` (each captioned by
/// `caption`) and the cache, written to `out` one map at a time (with full recomputation a
/// step of a 144-head model at 200 positions draws 144 maps of 200 x 200 cells).
fn write_step(
    out: &mut impl Write,
    step: &StepView,
    maps: &[AttentionMap],
    caption: &dyn Fn(&AttentionMap) -> String,
) -> io::Result<()> {
    write!(
        out,
        "<section class=\"step\" data-step=\"{}\" id=\"step-{}\">\n<h2>Step {}: after {} → {}</h2>\n\
         <h3>Next-token probabilities</h3>\n{}\n<h3>Attention</h3>\n<div class=\"maps\">\n",
        step.number,
        step.number,
        step.number,
        escape_html(&quoted_tail(&step.seen_text, 60)),
        escape_html(&chosen_label(step)),
        html_candidates(step),
    )?;
    write_figures(out, maps.iter(), &step.seen, "attention", caption)?;
    write!(out, "\n</div>\n<h3>KV cache</h3>\n{}\n</section>\n", html_cache(&step.cache))
}

/// The maps' figures, one line between two, each rendered and written before the next.
fn write_figures<M: Borrow<AttentionMap>>(
    out: &mut impl Write,
    maps: impl Iterator<Item = M>,
    labels: &[String],
    class: &str,
    caption: &dyn Fn(&AttentionMap) -> String,
) -> io::Result<()> {
    let mut previous_layer = None;
    for (i, map) in maps.enumerate() {
        let map = map.borrow();
        if i > 0 {
            out.write_all(b"\n")?;
        }
        let first_of_layer = previous_layer != Some(map.head.layer);
        previous_layer = Some(map.head.layer);
        let anchor = first_of_layer && class == "attention-run";
        let figure = html_attention_figure(map, labels, class, &caption(map), anchor);
        out.write_all(figure.as_bytes())?;
    }
    Ok(())
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

/// `<figure class="{class}" data-layer data-head>`: a caption and the SVG grid; the first
/// of a layer's maps over the run carries the anchor `layer-L`.
fn html_attention_figure(
    map: &AttentionMap,
    labels: &[String],
    class: &str,
    caption: &str,
    anchor: bool,
) -> String {
    let id = if anchor { format!(" id=\"layer-{}\"", map.head.layer) } else { String::new() };
    format!(
        "<figure class=\"{class}\"{id} data-layer=\"{}\" data-head=\"{}\">\
         <figcaption>{}</figcaption>\n{}\n</figure>",
        map.head.layer,
        map.head.head,
        escape_html(caption),
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
