//! The attention maps of the HTML report as SVG grids: key labels on top (rotated), query
//! labels on the left, one square per visible weight shaded by it, nothing for the masked
//! future, each weight in a tooltip.

use super::html::escape_html;
use super::html_run::weight_label;
use super::record::AttentionMap;
use super::terminal::{position_label, shorten};
use crate::trace::format_fixed;

/// Side of one attention cell in the SVG maps, in pixels.
const CELL_PX: usize = 28;

/// Room for the query labels (left) and the rotated key labels (top), in pixels.
const SVG_LABEL_PX: usize = 90;

/// Characters of a token label in an SVG map.
const SVG_LABEL_CHARS: usize = 11;

/// Maps with at most this many keys print each weight inside its cell; larger ones show it
/// only in the cell's tooltip.
const MAX_KEYS_WITH_NUMBERS: usize = 16;

/// The attention map as an SVG grid: key labels on top (rotated), query labels on the
/// left, one shaded square per visible weight, nothing for the masked future.
pub(super) fn svg_attention(map: &AttentionMap, labels: &[String]) -> String {
    let width = SVG_LABEL_PX + map.n_keys * CELL_PX + 2;
    let height = SVG_LABEL_PX + map.n_queries * CELL_PX + 2;
    let mut svg = vec![format!(
        "<svg class=\"map\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    )];
    for key in 0..map.n_keys {
        let x = SVG_LABEL_PX + key * CELL_PX + CELL_PX / 2;
        svg.push(format!(
            "<text transform=\"translate({x},{}) rotate(-90)\" dominant-baseline=\"middle\">{}</text>",
            SVG_LABEL_PX - 4,
            svg_label(key, labels)
        ));
    }
    for row in 0..map.n_queries {
        let y = SVG_LABEL_PX + row * CELL_PX + CELL_PX / 2;
        svg.push(format!(
            "<text x=\"{}\" y=\"{y}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
            SVG_LABEL_PX - 4,
            svg_label(map.query_position(row), labels)
        ));
        svg.extend(
            (0..map.n_keys)
                .filter(|&key| !map.is_masked(row, key))
                .map(|key| svg_cell(map, row, key, labels)),
        );
    }
    svg.push("</svg>".into());
    svg.join("\n")
}

/// `"3 world"`, shortened and escaped.
fn svg_label(position: usize, labels: &[String]) -> String {
    escape_html(&shorten(&position_label(position, labels), SVG_LABEL_CHARS))
}

/// One visible weight: a square whose opacity is the weight, its value in a tooltip and,
/// in small maps, printed inside.
fn svg_cell(map: &AttentionMap, row: usize, key: usize, labels: &[String]) -> String {
    let weight = map.weight(row, key);
    let opacity = if weight.is_nan() { 0.0 } else { weight.clamp(0.0, 1.0) };
    let (x, y) = (SVG_LABEL_PX + key * CELL_PX, SVG_LABEL_PX + row * CELL_PX);
    let tooltip = format!(
        "query {} → key {}: {}",
        position_label(map.query_position(row), labels),
        position_label(key, labels),
        format_fixed(weight, 4)
    );
    let mut cell = format!(
        "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL_PX}\" height=\"{CELL_PX}\" fill-opacity=\"{}\">\
         <title>{}</title></rect>",
        format_fixed(opacity, 4),
        escape_html(&tooltip)
    );
    if map.n_keys <= MAX_KEYS_WITH_NUMBERS {
        let class = if opacity > 0.5 { " class=\"light\"" } else { "" };
        cell.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" dominant-baseline=\"middle\"{class}>{}</text>",
            x + CELL_PX / 2,
            y + CELL_PX / 2,
            weight_label(weight)
        ));
    }
    cell
}
