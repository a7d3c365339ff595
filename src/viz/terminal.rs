//! The terminal pictures, plain text without trailing spaces: an attention map as a grid of
//! shades and weights ([`attention_heatmap`]), the most likely next tokens as bars
//! ([`top_candidates`]), and the KV cache's fill ([`cache_fill`]).

use super::lens::{LogitLens, TokenSurprise};
use super::record::{AttentionMap, CacheFill, Candidate, HeadId, LayerFill, StepView};
use crate::sample::SamplingParams;
use crate::trace::format_fixed;

/// Shades from weight 0 to 1, in five equal bands: `[0, 0.2)` is a space, `[0.8, 1]` a full
/// block.
const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];

/// Shown in place of a masked (future) attention weight.
pub const MASKED: char = '·';

/// Width of a row label (`"12 ␣world"`) in a heatmap.
const ROW_LABEL_WIDTH: usize = 10;

/// Width of a heatmap column: a shade, a space and two decimals (`"▒ 0.43"`), or a
/// column label.
const CELL_WIDTH: usize = 8;

/// Width of a token in the candidates picture.
const TOKEN_WIDTH: usize = 12;

/// Characters of a bar at probability 1 (candidates) or at a full cache.
const BAR_WIDTH: usize = 40;

/// The shading character for an attention weight in `[0, 1]`.
pub fn shade(weight: f32) -> char {
    let band = (weight.clamp(0.0, 1.0) * SHADES.len() as f32) as usize; // NaN -> 0
    SHADES[band.min(SHADES.len() - 1)]
}

/// A token's text with its invisible characters made visible, so that a label shows
/// exactly what the token holds: space `␣`, newline `↵`, tab `⇥`, carriage return `␍`,
/// other control characters escaped (`\u{1b}`), an empty text `∅`.
pub fn visible_token(text: &str) -> String {
    if text.is_empty() {
        return "∅".into();
    }
    text.chars()
        .map(|c| match c {
            ' ' => "␣".to_string(),
            '\n' => "↵".to_string(),
            '\t' => "⇥".to_string(),
            '\r' => "␍".to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// `text` cut to at most `width` characters, its last one `…` if it was cut.
pub(super) fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    kept + "…"
}

/// `text` shortened and padded with spaces to exactly `width` characters.
fn fit(text: &str, width: usize) -> String {
    format!("{:<width$}", shorten(text, width))
}

/// `"3 world"`: a position and its visible token (`?` if no label was given).
pub(super) fn position_label(position: usize, labels: &[String]) -> String {
    let token = labels.get(position).map_or("?".to_string(), |t| visible_token(t));
    format!("{position} {token}")
}

/// One layer and head's attention weights as a text grid: a title line, a header of key
/// labels, then one row per query (`"▒ 0.43"`: shade and weight with 2 decimals), the
/// masked future shown as [`MASKED`]. `labels` holds the text of each position's token
/// (`n_keys` of them, such as [`StepView::seen`]); labels are `position token` with
/// invisible characters made visible ([`visible_token`]), cut to fit. Lines carry no
/// trailing spaces.
///
/// ```text
/// attention weights, layer 0, head 0, step 2 (rows: queries, columns: keys, ·: masked future)
///            0 hello  1 world
/// 1 world    ▒ 0.43   ▒ 0.57
/// ```
pub fn attention_heatmap(map: &AttentionMap, labels: &[String]) -> String {
    let mut lines = vec![format!(
        "attention weights, {} (rows: queries, columns: keys, {MASKED}: masked future)",
        map.title()
    )];
    let header: Vec<String> =
        (0..map.n_keys).map(|key| fit(&position_label(key, labels), CELL_WIDTH)).collect();
    lines.push(format!("{} {}", " ".repeat(ROW_LABEL_WIDTH), header.join(" ")));
    for row in 0..map.n_queries {
        lines.push(heatmap_row(map, row, labels));
    }
    as_text(&lines)
}

/// One query row of [`attention_heatmap`].
fn heatmap_row(map: &AttentionMap, row: usize, labels: &[String]) -> String {
    let label = fit(&position_label(map.query_position(row), labels), ROW_LABEL_WIDTH);
    let cells: Vec<String> = (0..map.n_keys)
        .map(|key| {
            let cell = if map.is_masked(row, key) {
                MASKED.to_string()
            } else {
                let weight = map.weight(row, key);
                format!("{} {}", shade(weight), format_fixed(weight, 2))
            };
            fit(&cell, CELL_WIDTH)
        })
        .collect();
    format!("{label} {}", cells.join(" "))
}

/// `"T = 0.8, top-k 3"`: the knobs of a sampler.
fn sampling_knobs(sampling: &SamplingParams) -> String {
    let mut knobs = vec![format!("T = {}", sampling.temperature)];
    knobs.extend(sampling.top_k.map(|k| format!("top-k {k}")));
    knobs.extend(sampling.top_p.map(|p| format!("top-p {p}")));
    knobs.extend(sampling.min_p.map(|p| format!("min-p {p}")));
    knobs.extend(sampling.typical_p.map(|p| format!("typical-p {p}")));
    knobs.join(", ")
}

/// Which distribution is shown, in a few words (terminal): `"softmax at T = 1"` for greedy,
/// `"sampler: T = 0.8, top-k 3"` otherwise.
fn short_distribution_caption(sampling: &SamplingParams) -> String {
    if sampling.is_greedy() {
        "softmax at T = 1".into()
    } else {
        format!("sampler: {}", sampling_knobs(sampling))
    }
}

/// Which distribution is shown, in a sentence (HTML).
pub(super) fn distribution_caption(sampling: &SamplingParams) -> String {
    if sampling.is_greedy() {
        "softmax of the logits at temperature 1 (greedy decoding takes the most likely token; \
         its own distribution would be 1 on that token and 0 elsewhere)"
            .into()
    } else {
        format!("the distribution the sampler draws from ({})", sampling_knobs(sampling))
    }
}

/// `text` as a quoted string, keeping only its last `width` characters (`"…ld world"`).
pub(super) fn quoted_tail(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return format!("{text:?}");
    }
    let tail: String = text.chars().skip(n + 1 - width).collect();
    format!("{:?}", format!("…{tail}"))
}

/// `round(fraction * BAR_WIDTH)`, for a fraction in `[0, 1]`.
fn bar_length(fraction: f64) -> usize {
    (fraction.clamp(0.0, 1.0) * BAR_WIDTH as f64).round() as usize // NaN -> 0
}

/// A bar of [`bar_length`] full blocks.
fn bar(fraction: f64) -> String {
    "█".repeat(bar_length(fraction))
}

/// The text of the chosen token for a title: `world`, `<|endoftext|> (ends the text)`.
pub(super) fn chosen_label(step: &StepView) -> String {
    let text = match step.chosen_candidate() {
        Some(candidate) => visible_token(&candidate.text),
        None => step.chosen.map_or("(none)".to_string(), |id| format!("id {id}")),
    };
    if step.ended_text { text + " (ends the text)" } else { text }
}

/// The `n` most likely next tokens of a step as bars, the chosen one marked `▶`, and the
/// rest of the vocabulary summed into one line. Probabilities are those of the
/// distribution the sampler draws from ([`shown_sampling`](super::shown_sampling): softmax
/// at T = 1 for greedy).
///
/// ```text
/// step 1: "hello" -> world   (softmax at T = 1)
///   ▶ world        0.4379 ██████████████████
///     hello        0.2667 ███████████
/// ```
pub fn top_candidates(step: &StepView, n: usize) -> String {
    let mut lines = vec![format!(
        "step {}: {} -> {}   ({})",
        step.number,
        quoted_tail(&step.seen_text, 40),
        chosen_label(step),
        short_distribution_caption(&step.sampling)
    )];
    let shown = shown_candidates(step, n);
    for candidate in &shown {
        let marker = if Some(candidate.id) == step.chosen { '▶' } else { ' ' };
        let token = fit(&visible_token(&candidate.text), TOKEN_WIDTH);
        let p = candidate.probability;
        lines.push(format!("  {marker} {token} {p:.4} {}", bar(p)));
    }
    let n_other = step.n_vocab.saturating_sub(shown.len());
    if n_other > 0 {
        let other: f64 = 1.0 - shown.iter().map(|c| c.probability).sum::<f64>();
        let label = format!("{:<TOKEN_WIDTH$}", format!("({n_other} other)")); // never cut
        lines.push(format!("    {label} {:.4} {}", other.max(0.0), bar(other)));
    }
    as_text(&lines)
}

/// The first `n` candidates, plus the chosen one if it comes later.
fn shown_candidates(step: &StepView, n: usize) -> Vec<&Candidate> {
    let mut shown: Vec<&Candidate> = step.candidates.iter().take(n).collect();
    if let Some(chosen) = step.chosen_candidate()
        && !shown.iter().any(|c| c.id == chosen.id)
    {
        shown.push(chosen);
    }
    shown
}

/// `lines`, each without trailing spaces and ended by a newline.
fn as_text(lines: &[String]) -> String {
    lines.iter().map(|line| line.trim_end().to_string() + "\n").collect()
}

/// `"400 B"`, `"1.5 KiB"`, `"72.0 MiB"`.
pub fn format_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// The KV cache's fill, one line per layer: positions used of capacity, a bar (`█` used,
/// `░` free) and the bytes, then the total.
///
/// ```text
/// KV cache: 5 of 6 positions filled in every layer
///   layer 0  5/6  █████████████████████████████████░░░░░░░  400 B of 480 B
/// ```
pub fn cache_fill(fill: &CacheFill) -> String {
    if fill.capacity == 0 {
        return "KV cache: none (capacity 0)\n".into();
    }
    let positions = fill.layers.first().map_or(0, |l| l.positions);
    let mut lines =
        vec![format!("KV cache: {positions} of {} positions filled in every layer", fill.capacity)];
    let count_width = format!("{0}/{0}", fill.capacity).len();
    for (layer, layer_fill) in fill.layers.iter().enumerate() {
        lines.push(cache_layer_line(layer, layer_fill, fill.capacity, count_width));
    }
    lines.push(cache_total_line(fill));
    as_text(&lines)
}

/// `"  layer 0  5/6  ██████░░  400 B of 480 B"`.
fn cache_layer_line(layer: usize, fill: &LayerFill, capacity: usize, count_width: usize) -> String {
    let used = bar_length(fill.positions as f64 / capacity as f64);
    format!(
        "  layer {layer:<2} {:<count_width$}  {}{}  {} of {}",
        format!("{}/{capacity}", fill.positions),
        "█".repeat(used),
        "░".repeat(BAR_WIDTH - used),
        format_bytes(fill.bytes),
        format_bytes(fill.capacity_bytes)
    )
}

/// `"  in all: 800 B used, 960 B allocated = 2 (k, v) x 2 layers x 6 positions x 10 floats x 4 bytes"`.
fn cache_total_line(fill: &CacheFill) -> String {
    let (used, allocated) = fill.total_bytes();
    let n_layer = fill.layers.len();
    let bytes_per_float = size_of::<f32>();
    let n_embd = allocated.checked_div(2 * n_layer * fill.capacity * bytes_per_float).unwrap_or(0);
    format!(
        "  in all: {} used, {} allocated = 2 (k, v) x {n_layer} layers x {} positions x {n_embd} floats x {bytes_per_float} bytes",
        format_bytes(used),
        format_bytes(allocated),
        fill.capacity
    )
}

/// Width of a row label in the logit lens (`"after block 11"`).
const LENS_LABEL_WIDTH: usize = 14;

/// Characters of a token in a logit-lens cell (`"␣world 0.39"`: token, space, 4 digits).
const LENS_TOKEN_WIDTH: usize = 7;

/// The logit lens of one step as a text grid: one column per position run this step
/// (headed by its token, from `labels`), one row per layer's residual stream, each cell the
/// top token there and its probability. The last row is the model's own prediction.
///
/// ```text
/// logit lens, step 1 (rows: the residual stream entering each block, then leaving the last;
/// cells: the top token of ln_f(x) @ wte^T and its probability)
///                0 hello      1 world
/// embeddings     world  0.31  hello  0.30
/// after block 1  world  0.44  <UNK>  0.28
/// ```
pub fn lens_grid(lens: &LogitLens, step: usize, labels: &[String]) -> String {
    let mut lines = vec![
        format!("logit lens, step {step} (rows: the residual stream entering each block, then"),
        "leaving the last; cells: the top token of ln_f(x) @ wte^T and its probability)".into(),
    ];
    let n_positions = lens.rows.first().map_or(0, Vec::len);
    let cell_width = LENS_TOKEN_WIDTH + 5;
    let header: Vec<String> = (0..n_positions)
        .map(|i| fit(&position_label(lens.first_position + i, labels), cell_width))
        .collect();
    lines.push(format!("{} {}", " ".repeat(LENS_LABEL_WIDTH), header.join(" ")));
    for (row, cells) in lens.rows.iter().enumerate() {
        let cells: Vec<String> = cells
            .iter()
            .map(|c| {
                let token = fit(&visible_token(&c.text), LENS_TOKEN_WIDTH);
                format!("{token} {}", format_fixed(c.probability as f32, 2))
            })
            .collect();
        let label = fit(&LogitLens::row_label(row), LENS_LABEL_WIDTH);
        lines.push(format!("{label} {}", cells.join(" ")));
    }
    as_text(&lines)
}

/// Surprisal shades: below a quarter of a uniform guess's bits (`log2 n_vocab`) nothing,
/// then `░`, `▒`, `▓` for the next quarters, `█` beyond.
pub fn surprise_shade(bits: f64, n_vocab: usize) -> char {
    let uniform = (n_vocab.max(2) as f64).log2();
    let band = (bits / uniform * 4.0).max(0.0) as usize; // NaN -> 0
    SHADES[band.min(SHADES.len() - 1)]
}

/// The text shaded by surprise, compactly: each token as `shade token bits` (bits with one
/// decimal), wrapped at 80 characters; the first token, which has no prediction, unshaded.
///
/// ```text
/// surprise (-log2 p in bits; shade: ░ from 25% of a uniform guess's 2.0 bits, ▒ 50%, ▓ 75%, █ 100%)
/// hello ░world 0.6 ░world 0.9
/// ```
pub fn surprise_text(token_texts: &[String], surprise: &[TokenSurprise], n_vocab: usize) -> String {
    let uniform = (n_vocab.max(2) as f64).log2();
    let mut lines = vec![format!(
        "surprise (-log2 p in bits; shade: ░ from 25% of a uniform guess's {uniform:.1} bits, \
         ▒ 50%, ▓ 75%, █ 100%)"
    )];
    let mut line = token_texts.first().map_or(String::new(), |t| visible_token(t));
    for s in surprise {
        let text = token_texts.get(s.position).map_or("?".into(), |t| visible_token(t));
        let word = format!("{}{text} {:.1}", surprise_shade(s.bits, n_vocab), s.bits);
        if line.chars().count() + 1 + word.chars().count() > 80 && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    lines.push(line);
    as_text(&lines)
}

/// The three terminal pictures of one step, separated by blank lines: `head`'s attention
/// map (if it was recorded), the `top_n` candidates and the cache fill. What
/// `gpt2-edu --explain` prints after each step.
pub fn step_pictures(step: &StepView, head: HeadId, top_n: usize) -> String {
    let mut pictures = Vec::new();
    if let Some(map) = step.attention_map(head) {
        pictures.push(attention_heatmap(map, &step.seen));
    }
    pictures.push(top_candidates(step, top_n));
    pictures.push(cache_fill(&step.cache));
    pictures.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hparams::HParams;
    use crate::kv_cache::KvCache;

    fn map_2x2() -> AttentionMap {
        // Block 0, head 0 of "hello world" (LEARN.md section 4).
        AttentionMap {
            head: HeadId { layer: 0, head: 0 },
            first_step: 1,
            last_step: 1,
            n_queries: 2,
            n_keys: 2,
            weights: vec![1.0, 0.0, 0.42844, 0.57156],
        }
    }

    #[test]
    fn shades_cover_zero_to_one_in_five_bands() {
        assert_eq!(shade(0.0), ' ');
        assert_eq!(shade(0.19), ' ');
        assert_eq!(shade(0.2), '░');
        assert_eq!(shade(0.5), '▒');
        assert_eq!(shade(0.7), '▓');
        assert_eq!(shade(1.0), '█');
        assert_eq!(shade(f32::NAN), ' ');
        assert_eq!(shade(7.0), '█');
    }

    #[test]
    fn queries_are_the_last_positions_and_see_no_later_key() {
        let map =
            AttentionMap { n_queries: 1, n_keys: 3, weights: vec![0.2, 0.3, 0.5], ..map_2x2() };
        assert_eq!(map.query_position(0), 2);
        assert!(!map.is_masked(0, 2));
        let full = map_2x2();
        assert!(full.is_masked(0, 1));
        assert!(!full.is_masked(1, 1));
        assert_eq!(full.weight(5, 5), 0.0, "outside the map");
    }

    #[test]
    fn heatmap_shows_weights_and_an_empty_future() {
        let labels = ["hello".to_string(), "world".to_string()];
        let picture = attention_heatmap(&map_2x2(), &labels);
        let lines: Vec<&str> = picture.lines().collect();
        assert!(lines[0].contains("layer 0, head 0, step 1"), "{picture}");
        assert_eq!(lines[1], "           0 hello  1 world");
        assert_eq!(lines[2], "0 hello    █ 1.00   ·");
        assert_eq!(lines[3], "1 world    ▒ 0.43   ▒ 0.57");
    }

    #[test]
    fn invisible_characters_become_visible() {
        assert_eq!(visible_token(" world\n"), "␣world↵");
        assert_eq!(visible_token("a\tb\r"), "a⇥b␍");
        assert_eq!(visible_token("\u{1b}"), "\\u{1b}");
        assert_eq!(visible_token(""), "∅");
        assert_eq!(fit("abcdefghijk", 5), "abcd…");
        assert_eq!(fit("ab", 4), "ab  ");
    }

    #[test]
    fn candidates_of_a_large_vocabulary_end_with_the_others_line() {
        let step = StepView {
            number: 1,
            seen: vec!["The".into()],
            seen_text: "The".into(),
            chosen: Some(7),
            ended_text: false,
            attention: Vec::new(),
            candidates: vec![Candidate { id: 7, text: " dog".into(), probability: 0.25 }],
            other_probability: 0.75,
            n_vocab: 50257,
            sampling: SamplingParams::GREEDY,
            cache: CacheFill { capacity: 0, layers: Vec::new() },
            lens: None,
            surprise: Vec::new(),
        };
        let picture = top_candidates(&step, 10);
        assert_eq!(
            picture,
            "step 1: \"The\" -> ␣dog   (softmax at T = 1)\n  \
             ▶ ␣dog         0.2500 ██████████\n    \
             (50256 other) 0.7500 ██████████████████████████████\n"
        );
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(format_bytes(400), "400 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(75_497_472), "72.0 MiB");
    }

    #[test]
    fn cache_fill_counts_positions_and_bytes() {
        let hparams = HParams::dummy();
        let cache = KvCache::with_capacity(&hparams, 6).unwrap();
        let fill = CacheFill::of(&cache);
        assert_eq!(fill.layers.len(), 2);
        assert_eq!(fill.layers[0], LayerFill { positions: 0, bytes: 0, capacity_bytes: 480 });
        let picture = cache_fill(&fill);
        assert!(
            picture.starts_with("KV cache: 0 of 6 positions filled in every layer\n"),
            "{picture}"
        );
        assert!(picture.contains("0 B of 480 B"), "{picture}");
        assert!(picture.contains("x 6 positions x 10 floats x 4 bytes"), "{picture}");
        let none = CacheFill::of(&KvCache::with_capacity(&hparams, 0).unwrap());
        assert_eq!(cache_fill(&none), "KV cache: none (capacity 0)\n");
    }
}
