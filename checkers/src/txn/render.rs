//! Pictures of one anomaly's dependency cycle, as Graphviz DOT and as a self-contained SVG.
//!
//! A cycle is the proof behind a transactional anomaly (G0, G1c, G-single, G2...): each
//! transaction depends on the next one, and the last on the first. The text explanation says
//! this edge by edge; a picture shows at a glance which kinds of edge close the loop, which is
//! what decides the anomaly. The SVG is drawn by hand (no dependency, no fonts measured): text
//! is monospace so that widths can be estimated from character counts, and every size grows
//! with the number of nodes and the length of their labels.
//!
//! Both outputs are bounded so that a hostile or huge cycle cannot produce a huge picture: at
//! most [`MAX_NODES`] transactions are drawn (the rest stand behind one "... more" node that
//! keeps the loop closed), lines are cut at [`MAX_LINE_CHARS`] characters and a node shows at
//! most [`MAX_DETAIL_LINES`] micro-op lines. Everything taken from the input is escaped, and
//! control characters are replaced, so the output is always valid DOT and well-formed XML.
//!
//! The module is pure: it returns strings and the caller writes the files.

use crate::text::clip;
use std::f64::consts::PI;
use std::fmt::Write;

/// One anomaly's cycle: `nodes[i] --edges[i]--> nodes[(i+1) % n]`.
///
/// Extra edges (beyond `nodes.len()`) are ignored; a missing edge is simply not drawn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CycleView {
    pub title: String,
    pub nodes: Vec<NodeView>,
    pub edges: Vec<EdgeView>,
}

/// One transaction of the cycle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Who the transaction is, e.g. `T12 (process 3, ok)`.
    pub label: String,
    /// Its micro-ops, e.g. `append 7 3; r 8 [1 2]`; drawn one micro-op per line.
    pub detail: String,
}

/// One dependency between consecutive transactions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeView {
    /// `ww`, `wr`, `rw`, `process` or `realtime`; other kinds are drawn in grey.
    pub kind: String,
    /// The evidence, e.g. `T3 read [3 4] on key 7`.
    pub why: String,
}

/// More transactions than this are not drawn: a cycle that long is read as text anyway, and
/// the picture stays a few thousand pixels wide at most.
pub const MAX_NODES: usize = 64;
/// Longer lines (labels, micro-ops, edge reasons) are cut and end in an ellipsis.
pub const MAX_LINE_CHARS: usize = 60;
/// A node shows at most this many micro-op lines; the rest are counted.
pub const MAX_DETAIL_LINES: usize = 8;
/// The title is cut at this many characters.
const MAX_TITLE_CHARS: usize = 160;
/// Edge reasons in the SVG's edge list and in tooltips are cut at this many characters.
const MAX_WHY_CHARS: usize = 200;
/// Kind names are cut at this many characters (they are drawn on the arrows).
const MAX_KIND_CHARS: usize = 16;

/// The kinds of edge that Elle-style checkers produce, in legend order.
const KNOWN_KINDS: [&str; 5] = ["ww", "wr", "rw", "process", "realtime"];

/// The colour of an edge kind: one colour per kind, so a cycle's mix of kinds shows at a glance.
fn kind_colour(kind: &str) -> &'static str {
    match kind {
        "ww" => "#1f77b4",
        "wr" => "#2ca02c",
        "rw" => "#d62728",
        "process" => "#9467bd",
        "realtime" => "#e377c2",
        _ => "#7f7f7f",
    }
}

/// What an edge `A -> B` of a kind means, for the legend.
fn kind_meaning(kind: &str) -> &'static str {
    match kind {
        "ww" => "write-write: B overwrote a value A wrote",
        "wr" => "write-read: B read a value A wrote",
        "rw" => "read-write (anti-dependency): B overwrote a value A read",
        "process" => "process order: the same process ran B after A",
        "realtime" => "real time: A completed before B began",
        _ => "another kind of dependency",
    }
}

// ---------------------------------------------------------------------------------------------
// The plan: what is drawn, shared by both outputs so that they always agree.
// ---------------------------------------------------------------------------------------------

/// What gets drawn: the bounded nodes with their text already cut into lines, and the edges
/// between drawn nodes.
struct Plan {
    title: String,
    nodes: Vec<PlanNode>,
    edges: Vec<PlanEdge>,
    /// The distinct kinds drawn: the known ones in legend order, then others as they come.
    kinds: Vec<String>,
    /// Transactions of the cycle not drawn (behind the "... more" node).
    left_out: usize,
    total: usize,
}

struct PlanNode {
    /// The label's lines (usually one), drawn bold.
    label: Vec<String>,
    /// The micro-op lines.
    detail: Vec<String>,
    /// The "... N more" stand-in for the transactions not drawn.
    is_more: bool,
}

impl PlanNode {
    fn lines(&self) -> impl Iterator<Item = &String> {
        self.label.iter().chain(self.detail.iter())
    }

    fn width_chars(&self) -> usize {
        self.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    fn line_count(&self) -> usize {
        self.label.len() + self.detail.len()
    }
}

struct PlanEdge {
    from: usize,
    to: usize,
    kind: String,
    why: String,
    /// The index of the edge's kind in `Plan::kinds`, which names its arrowhead marker.
    marker: usize,
}

impl Plan {
    fn new(cycle: &CycleView) -> Plan {
        let total = cycle.nodes.len();
        let shown = total.min(MAX_NODES);
        let left_out = total - shown;
        let mut nodes: Vec<PlanNode> = cycle.nodes[..shown].iter().map(plan_node).collect();
        if left_out > 0 {
            nodes.push(PlanNode {
                label: vec![format!("... {left_out} more")],
                detail: vec![format!("{shown} of {total} drawn")],
                is_more: true,
            });
        }
        let mut edges = plan_edges(cycle, shown, left_out > 0);
        let kinds = kinds_of(&edges);
        for e in &mut edges {
            e.marker = kinds.iter().position(|k| *k == e.kind).unwrap_or(0);
        }
        Plan {
            title: clip(&clean_line(&cycle.title), MAX_TITLE_CHARS),
            nodes,
            edges,
            kinds,
            left_out,
            total,
        }
    }

    /// A short name for node `i` in the edge list: its label's first line.
    fn short_name(&self, i: usize) -> String {
        let first = self.nodes[i]
            .label
            .first()
            .map(String::as_str)
            .unwrap_or("");
        clip(first, 24)
    }
}

/// The distinct kinds of `edges`: the known ones in legend order, then others as they come.
/// At most `MAX_NODES + 1` edges are drawn, so the linear `contains` stays cheap.
fn kinds_of(edges: &[PlanEdge]) -> Vec<String> {
    let mut kinds: Vec<String> = KNOWN_KINDS
        .iter()
        .filter(|k| edges.iter().any(|e| e.kind == **k))
        .map(|k| k.to_string())
        .collect();
    for e in edges {
        if !kinds.contains(&e.kind) {
            kinds.push(e.kind.clone());
        }
    }
    kinds
}

fn plan_node(n: &NodeView) -> PlanNode {
    let label: Vec<String> = n
        .label
        .split('\n')
        .map(|l| clip(&clean_line(l), MAX_LINE_CHARS))
        .collect();
    PlanNode {
        label,
        detail: detail_lines(&n.detail),
        is_more: false,
    }
}

/// The micro-ops one per line (split at `;` and at newlines), bounded.
fn detail_lines(detail: &str) -> Vec<String> {
    let all: Vec<&str> = detail
        .split(['\n', ';'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut lines: Vec<String> = all
        .iter()
        .take(MAX_DETAIL_LINES)
        .map(|l| clip(&clean_line(l), MAX_LINE_CHARS))
        .collect();
    if all.len() > MAX_DETAIL_LINES {
        lines.push(format!("... {} more", all.len() - MAX_DETAIL_LINES));
    }
    lines
}

/// Edges between drawn nodes. When nodes were left out, edge `shown - 1` goes into the
/// "... more" node and the cycle's last edge comes out of it, so the loop stays closed.
fn plan_edges(cycle: &CycleView, shown: usize, truncated: bool) -> Vec<PlanEdge> {
    let n = cycle.nodes.len();
    let mut out = Vec::new();
    let mut push = |i: usize, from: usize, to: usize| {
        if let Some(e) = cycle.edges.get(i) {
            out.push(PlanEdge {
                from,
                to,
                kind: clip(&clean_line(&e.kind), MAX_KIND_CHARS),
                why: clip(&clean_line(&e.why), MAX_WHY_CHARS),
                marker: 0,
            });
        }
    };
    for i in 0..shown.saturating_sub(1) {
        push(i, i, i + 1);
    }
    if n == 0 {
        return out;
    }
    if truncated {
        let more = shown;
        push(shown - 1, shown - 1, more);
        push(n - 1, more, 0);
    } else {
        push(n - 1, n - 1, 0);
    }
    out
}

/// One line of text: control characters (newlines included) become spaces. They are not
/// valid in XML 1.0 and would break a DOT string or an SVG text line.
fn clean_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || is_xml_nonchar(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// U+FFFE and U+FFFF are not XML characters.
fn is_xml_nonchar(c: char) -> bool {
    c == '\u{FFFE}' || c == '\u{FFFF}'
}

// ---------------------------------------------------------------------------------------------
// DOT
// ---------------------------------------------------------------------------------------------

/// The cycle as Graphviz text: one box per transaction (label, then its micro-ops), one edge
/// per dependency labelled with its kind, coloured by kind, with the evidence as tooltip.
///
/// `dot -Tsvg` draws it as a column with one back edge; `circo -Tsvg` draws it as a ring.
pub fn dot(cycle: &CycleView) -> String {
    let plan = Plan::new(cycle);
    let mut out = String::with_capacity(256 + 160 * plan.nodes.len());
    out.push_str("digraph cycle {\n");
    let mut title = plan.title.clone();
    if plan.left_out > 0 {
        title.push_str(&format!(
            " ({} of {} transactions drawn, {} left out)",
            MAX_NODES, plan.total, plan.left_out
        ));
    }
    let _ = writeln!(
        out,
        "  graph [label=\"{}\", labelloc=t, fontname=\"Helvetica\"];",
        dot_escape(&title)
    );
    out.push_str(
        "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f7f7f7\", fontname=\"Courier\"];\n",
    );
    out.push_str("  edge [fontname=\"Helvetica\", penwidth=1.6];\n");
    for (i, node) in plan.nodes.iter().enumerate() {
        dot_node(&mut out, i, node);
    }
    for e in &plan.edges {
        let colour = kind_colour(&e.kind);
        let why = dot_escape(&e.why);
        let _ = writeln!(
            out,
            "  n{} -> n{} [label=\"{}\", tooltip=\"{why}\", labeltooltip=\"{why}\", color=\"{colour}\", fontcolor=\"{colour}\"];",
            e.from,
            e.to,
            dot_escape(&e.kind),
        );
    }
    out.push_str("}\n");
    out
}

/// One node: the label lines centred, the micro-ops left-aligned (`\l`).
fn dot_node(out: &mut String, i: usize, node: &PlanNode) {
    let mut label = String::new();
    for l in &node.label {
        label.push_str(&dot_escape(l));
        label.push_str("\\n");
    }
    for l in &node.detail {
        label.push_str(&dot_escape(l));
        label.push_str("\\l");
    }
    let style = if node.is_more {
        ", style=\"rounded,dashed\""
    } else {
        ""
    };
    let _ = writeln!(out, "  n{i} [label=\"{label}\"{style}];");
}

/// Escapes text for a double-quoted DOT string: quotes and backslashes are escaped (so that a
/// backslash in the input never starts a Graphviz escape such as `\N`), newlines become `\n`,
/// other control characters spaces.
pub fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// SVG
// ---------------------------------------------------------------------------------------------

// Geometry, in px. Text is 12px monospace, whose advance is 0.6em; 7.4 leaves some slack for
// fonts that run wider.
const FONT_PX: f64 = 12.0;
const CHAR_W: f64 = 7.4;
const LINE_H: f64 = 16.0;
/// Padding inside a node's box.
const PAD: f64 = 8.0;
/// Margin around the whole picture.
const MARGIN: f64 = 20.0;
/// Free space between neighbouring boxes on the ring, for the arrow and its label.
const RING_GAP: f64 = 80.0;
/// Vertical space between the two boxes of a 2-cycle.
const COLUMN_GAP: f64 = 110.0;
/// How far the two arrows of a 2-cycle bow out, so they do not overlap.
const BEND: f64 = 46.0;
/// Room right of a 1-cycle's box for its loop.
const LOOP_W: f64 = 90.0;
/// Space between an arrow's end and the box it points at.
const ARROW_GAP: f64 = 3.0;

/// The cycle as a self-contained SVG document: nodes on a circle (a column for two), arrows
/// with arrowheads coloured by kind and labelled at their midpoints, a legend of the kinds, and
/// a list of the edges with their evidence (also each arrow's tooltip).
pub fn svg(cycle: &CycleView) -> String {
    let plan = Plan::new(cycle);
    let boxes = node_boxes(&plan);
    let layout = Layout::new(&plan, boxes);
    let mut out = String::with_capacity(4096 + 600 * plan.nodes.len());
    svg_open(&mut out, &plan, &layout);
    svg_title(&mut out, &plan);
    svg_markers(&mut out, &plan);
    for e in &plan.edges {
        svg_edge(&mut out, &layout, e);
    }
    for (i, node) in plan.nodes.iter().enumerate() {
        svg_node(&mut out, &layout.boxes[i], node);
    }
    if plan.nodes.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-style=\"italic\">(empty cycle)</text>",
            px(MARGIN),
            px(layout.graph_top + LINE_H)
        );
    }
    svg_legend(&mut out, &plan, layout.legend_top);
    svg_edge_list(&mut out, &plan, layout.list_top);
    out.push_str("</svg>\n");
    out
}

/// A node's box: centre and half sizes.
#[derive(Clone, Copy, Debug)]
struct NodeBox {
    x: f64,
    y: f64,
    half_w: f64,
    half_h: f64,
}

impl NodeBox {
    /// The point where the ray from the centre towards `(tx, ty)` leaves the box, pushed out by
    /// `ARROW_GAP` so an arrowhead does not touch the border.
    fn exit_towards(&self, tx: f64, ty: f64) -> (f64, f64) {
        let (dx, dy) = (tx - self.x, ty - self.y);
        let len = (dx * dx + dy * dy).sqrt();
        if len < 1e-9 {
            return (self.x, self.y);
        }
        let scale_x = if dx.abs() > 1e-9 {
            self.half_w / dx.abs()
        } else {
            f64::INFINITY
        };
        let scale_y = if dy.abs() > 1e-9 {
            self.half_h / dy.abs()
        } else {
            f64::INFINITY
        };
        let t = scale_x.min(scale_y);
        let gap = ARROW_GAP / len;
        (self.x + dx * (t + gap), self.y + dy * (t + gap))
    }
}

/// Box sizes from the text they hold; centres are set by the layout.
fn node_boxes(plan: &Plan) -> Vec<NodeBox> {
    plan.nodes
        .iter()
        .map(|n| NodeBox {
            x: 0.0,
            y: 0.0,
            half_w: (n.width_chars().max(4) as f64 * CHAR_W + 2.0 * PAD) / 2.0,
            half_h: (n.line_count().max(1) as f64 * LINE_H + 2.0 * PAD) / 2.0,
        })
        .collect()
}

/// Where everything goes: node centres, and the tops of the sections below the graph.
struct Layout {
    boxes: Vec<NodeBox>,
    width: f64,
    height: f64,
    graph_top: f64,
    legend_top: f64,
    list_top: f64,
}

impl Layout {
    fn new(plan: &Plan, mut boxes: Vec<NodeBox>) -> Layout {
        let title_lines = if plan.left_out > 0 { 2.0 } else { 1.0 };
        let graph_top = MARGIN + title_lines * 20.0 + 12.0;
        let (graph_w, graph_h) = match boxes.len() {
            0 => (0.0, LINE_H * 2.0),
            1 => place_single(&mut boxes, graph_top),
            2 => place_column(&mut boxes, graph_top),
            _ => place_ring(&mut boxes, graph_top),
        };
        let legend_top = graph_top + graph_h + 24.0;
        let legend_h = plan.kinds.len() as f64 * LINE_H;
        let list_top = legend_top + legend_h + 20.0;
        let list_h = (plan.edges.len() + 1) as f64 * LINE_H;
        let text_w = text_width(plan);
        let width = (graph_w + 2.0 * MARGIN)
            .max(text_w + 2.0 * MARGIN)
            .max(320.0);
        // Centre the graph when the text below is wider than it.
        let shift = (width - graph_w) / 2.0 - MARGIN;
        for b in &mut boxes {
            b.x += shift;
        }
        Layout {
            boxes,
            width,
            height: list_top + list_h + MARGIN,
            graph_top,
            legend_top,
            list_top,
        }
    }
}

/// The widest line of text outside the graph (title, legend, edge list), in px.
fn text_width(plan: &Plan) -> f64 {
    let title = plan.title.chars().count() as f64 * CHAR_W * 14.0 / FONT_PX;
    let legend = plan
        .kinds
        .iter()
        .map(|k| legend_text(k).chars().count())
        .max()
        .unwrap_or(0) as f64
        * CHAR_W
        + 48.0;
    let list = (0..plan.edges.len())
        .map(|i| edge_list_text(plan, &plan.edges[i]).chars().count())
        .max()
        .unwrap_or(0) as f64
        * CHAR_W;
    title.max(legend).max(list)
}

/// One node, its loop on the right. Returns the graph's width and height.
fn place_single(boxes: &mut [NodeBox], top: f64) -> (f64, f64) {
    let b = &mut boxes[0];
    b.x = MARGIN + b.half_w;
    b.y = top + b.half_h.max(40.0);
    (2.0 * b.half_w + LOOP_W, 2.0 * b.half_h.max(40.0))
}

/// Two nodes, one above the other, centred on the wider one.
fn place_column(boxes: &mut [NodeBox], top: f64) -> (f64, f64) {
    let half_w = boxes[0].half_w.max(boxes[1].half_w);
    let x = MARGIN + half_w + BEND;
    boxes[0].x = x;
    boxes[0].y = top + boxes[0].half_h;
    boxes[1].x = x;
    boxes[1].y = top + 2.0 * boxes[0].half_h + COLUMN_GAP + boxes[1].half_h;
    let height = 2.0 * boxes[0].half_h + COLUMN_GAP + 2.0 * boxes[1].half_h;
    (2.0 * (half_w + BEND), height)
}

/// Three or more nodes on a circle, clockwise from the top. The radius makes neighbouring
/// centres at least a box diagonal plus `RING_GAP` apart, so boxes never overlap and every
/// arrow has room for its label.
fn place_ring(boxes: &mut [NodeBox], top: f64) -> (f64, f64) {
    let n = boxes.len() as f64;
    let max_half_w = boxes.iter().map(|b| b.half_w).fold(0.0, f64::max);
    let max_half_h = boxes.iter().map(|b| b.half_h).fold(0.0, f64::max);
    let diagonal = 2.0 * (max_half_w * max_half_w + max_half_h * max_half_h).sqrt();
    let radius = ((diagonal + RING_GAP) / (2.0 * (PI / n).sin())).max(140.0);
    let cx = MARGIN + radius + max_half_w;
    let cy = top + radius + max_half_h;
    for (i, b) in boxes.iter_mut().enumerate() {
        let angle = -PI / 2.0 + 2.0 * PI * i as f64 / n;
        b.x = cx + radius * angle.cos();
        b.y = cy + radius * angle.sin();
    }
    (2.0 * (radius + max_half_w), 2.0 * (radius + max_half_h))
}

/// Pixel coordinates with one decimal: enough precision, and stable output for tests.
fn px(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "0".to_string()
    }
}

fn svg_open(out: &mut String, plan: &Plan, layout: &Layout) {
    let (w, h) = (px(layout.width.ceil()), px(layout.height.ceil()));
    let _ = writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"{FONT_PX}\">"
    );
    let _ = writeln!(out, "<title>{}</title>", xml_escape(&plan.title));
    let _ = writeln!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>"
    );
}

fn svg_title(out: &mut String, plan: &Plan) {
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        px(MARGIN),
        px(MARGIN + 14.0),
        xml_escape(&plan.title)
    );
    if plan.left_out > 0 {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-style=\"italic\">{} of {} transactions drawn; {} left out</text>",
            px(MARGIN),
            px(MARGIN + 34.0),
            MAX_NODES,
            plan.total,
            plan.left_out
        );
    }
}

/// One arrowhead marker per kind drawn, in the kind's colour (SVG 1.1 markers cannot take the
/// colour of the line they end).
fn svg_markers(out: &mut String, plan: &Plan) {
    out.push_str("<defs>\n");
    for (i, kind) in plan.kinds.iter().enumerate() {
        let _ = writeln!(
            out,
            "<marker id=\"arrow{i}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
             markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{}\"/></marker>",
            kind_colour(kind)
        );
    }
    out.push_str("</defs>\n");
}

/// The geometry of one arrow: an SVG path and where its label goes.
struct ArrowShape {
    path: String,
    label_x: f64,
    label_y: f64,
}

/// Straight between neighbours on a ring; bowed for a 2-cycle (so the two arrows separate);
/// a loop for a 1-cycle.
fn arrow_shape(layout: &Layout, e: &PlanEdge) -> ArrowShape {
    let (a, b) = (layout.boxes[e.from], layout.boxes[e.to]);
    if e.from == e.to {
        return loop_shape(a);
    }
    if layout.boxes.len() == 2 {
        return bowed_shape(a, b);
    }
    let (sx, sy) = a.exit_towards(b.x, b.y);
    let (ex, ey) = b.exit_towards(a.x, a.y);
    ArrowShape {
        path: format!("M{},{} L{},{}", px(sx), px(sy), px(ex), px(ey)),
        label_x: (sx + ex) / 2.0,
        label_y: (sy + ey) / 2.0,
    }
}

fn bowed_shape(a: NodeBox, b: NodeBox) -> ArrowShape {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len = (dx * dx + dy * dy).sqrt().max(1e-9);
    // Bow to the left of the direction of travel: the two opposite arrows bow apart.
    let (nx, ny) = (dy / len, -dx / len);
    let (mx, my) = ((a.x + b.x) / 2.0, (a.y + b.y) / 2.0);
    let (cx, cy) = (mx + nx * 2.0 * BEND, my + ny * 2.0 * BEND);
    let (sx, sy) = a.exit_towards(cx, cy);
    let (ex, ey) = b.exit_towards(cx, cy);
    ArrowShape {
        path: format!(
            "M{},{} Q{},{} {},{}",
            px(sx),
            px(sy),
            px(cx),
            px(cy),
            px(ex),
            px(ey)
        ),
        // The quadratic curve's point at t = 1/2.
        label_x: 0.25 * sx + 0.5 * cx + 0.25 * ex,
        label_y: 0.25 * sy + 0.5 * cy + 0.25 * ey,
    }
}

fn loop_shape(a: NodeBox) -> ArrowShape {
    let right = a.x + a.half_w;
    let (sy, ey) = (a.y - 10.0, a.y + 10.0);
    let far = right + LOOP_W - 20.0;
    ArrowShape {
        path: format!(
            "M{},{} C{},{} {},{} {},{}",
            px(right),
            px(sy),
            px(far),
            px(a.y - 50.0),
            px(far),
            px(a.y + 50.0),
            px(right + ARROW_GAP),
            px(ey)
        ),
        label_x: right + 0.75 * (far - right),
        label_y: a.y,
    }
}

fn svg_edge(out: &mut String, layout: &Layout, e: &PlanEdge) {
    let shape = arrow_shape(layout, e);
    let colour = kind_colour(&e.kind);
    let _ = writeln!(
        out,
        "<g class=\"edge\"><title>{}: {}</title>",
        xml_escape(&e.kind),
        xml_escape(&e.why)
    );
    let _ = writeln!(
        out,
        "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" marker-end=\"url(#arrow{})\"/>",
        shape.path, e.marker
    );
    let label_w = e.kind.chars().count() as f64 * CHAR_W + 8.0;
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"{colour}\" stroke-width=\"0.8\"/>",
        px(shape.label_x - label_w / 2.0),
        px(shape.label_y - LINE_H / 2.0),
        px(label_w),
        px(LINE_H)
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{colour}\" font-weight=\"bold\">{}</text>\n</g>",
        px(shape.label_x),
        px(shape.label_y + 4.0),
        xml_escape(&e.kind)
    );
}

/// A box with the label lines in bold and the micro-ops under them; the full text is also the
/// tooltip, for labels that were cut.
fn svg_node(out: &mut String, b: &NodeBox, node: &PlanNode) {
    let (left, top) = (b.x - b.half_w, b.y - b.half_h);
    let tooltip: Vec<&str> = node.lines().map(String::as_str).collect();
    let _ = writeln!(
        out,
        "<g class=\"node\"><title>{}</title>",
        xml_escape(&tooltip.join("\n"))
    );
    let dash = if node.is_more {
        " stroke-dasharray=\"5,3\""
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"#f7f7f7\" stroke=\"#333333\" stroke-width=\"1.2\"{dash}/>",
        px(left),
        px(top),
        px(2.0 * b.half_w),
        px(2.0 * b.half_h)
    );
    for (i, line) in node.lines().enumerate() {
        let weight = if i < node.label.len() {
            " font-weight=\"bold\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\"{weight}>{}</text>",
            px(left + PAD),
            px(top + PAD + (i + 1) as f64 * LINE_H - 4.0),
            xml_escape(line)
        );
    }
    out.push_str("</g>\n");
}

fn legend_text(kind: &str) -> String {
    format!("{kind}: {}", kind_meaning(kind))
}

/// One line per kind drawn: a short arrow in the kind's colour, then what the kind means.
fn svg_legend(out: &mut String, plan: &Plan, top: f64) {
    for (i, kind) in plan.kinds.iter().enumerate() {
        let y = top + i as f64 * LINE_H;
        let colour = kind_colour(kind);
        let _ = writeln!(
            out,
            "<g class=\"legend\"><path d=\"M{},{} L{},{}\" stroke=\"{colour}\" stroke-width=\"1.6\" marker-end=\"url(#arrow{i})\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text></g>",
            px(MARGIN),
            px(y + LINE_H / 2.0),
            px(MARGIN + 36.0),
            px(y + LINE_H / 2.0),
            px(MARGIN + 44.0),
            px(y + LINE_H - 4.0),
            xml_escape(&legend_text(kind))
        );
    }
}

fn edge_list_text(plan: &Plan, e: &PlanEdge) -> String {
    format!(
        "{} -> {} ({}): {}",
        plan.short_name(e.from),
        plan.short_name(e.to),
        e.kind,
        e.why
    )
}

/// The edges with their evidence, in cycle order: the proof, readable without hovering.
fn svg_edge_list(out: &mut String, plan: &Plan, top: f64) {
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">Edges</text>",
        px(MARGIN),
        px(top + LINE_H - 4.0)
    );
    for (i, e) in plan.edges.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>",
            px(MARGIN),
            px(top + (i + 2) as f64 * LINE_H - 4.0),
            kind_colour(&e.kind),
            xml_escape(&edge_list_text(plan, e))
        );
    }
}

/// Escapes text for XML content and attribute values; characters XML 1.0 does not allow
/// (control characters other than tab and newline, U+FFFE, U+FFFF) become spaces.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_xml_nonchar(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: usize) -> NodeView {
        NodeView {
            label: format!("T{i} (process {}, ok)", i % 5),
            detail: format!("append {i} 3; r {} [1 2]", i + 1),
        }
    }

    fn cycle(n: usize, kinds: &[&str]) -> CycleView {
        CycleView {
            title: format!("G-single: a cycle of {n}"),
            nodes: (0..n).map(node).collect(),
            edges: (0..n)
                .map(|i| EdgeView {
                    kind: kinds[i % kinds.len()].to_string(),
                    why: format!("T{} read [{i}] on key 7", (i + 1) % n),
                })
                .collect(),
        }
    }

    use crate::xml_check::well_formed;

    fn nasty() -> CycleView {
        CycleView {
            title: "a \"quoted\" <title> & more\\".to_string(),
            nodes: vec![
                NodeView {
                    label: "T1 \"q\" <b> & c\nsecond line".to_string(),
                    detail: "append 1 \"<x>\"; r 2 [a&b]\u{7}".to_string(),
                },
                NodeView {
                    label: "T2 \\N back\\slash".to_string(),
                    detail: String::new(),
                },
            ],
            edges: vec![
                EdgeView {
                    kind: "w<w".to_string(),
                    why: "why \"1\"\n<&>".to_string(),
                },
                EdgeView {
                    kind: "rw".to_string(),
                    why: "it's 'so'".to_string(),
                },
            ],
        }
    }

    /// Every double-quoted DOT string is terminated, with only known escapes inside.
    fn dot_strings_ok(dot: &str) -> Result<usize, String> {
        let mut count = 0;
        let mut chars = dot.chars();
        while let Some(c) = chars.next() {
            if c == '\n' {
                continue;
            }
            if c != '"' {
                continue;
            }
            count += 1;
            loop {
                match chars.next() {
                    None => return Err("unterminated string".into()),
                    Some('"') => break,
                    Some('\n') => return Err("raw newline in string".into()),
                    Some('\\') => match chars.next() {
                        Some('"' | '\\' | 'n' | 'l') => {}
                        other => return Err(format!("unexpected escape {other:?}")),
                    },
                    Some(_) => {}
                }
            }
        }
        Ok(count)
    }

    /// The `d` of each arrow (legend arrows excluded).
    fn edge_paths(svg: &str) -> Vec<&str> {
        svg.split("<g class=\"edge\">")
            .skip(1)
            .map(|g| {
                let start = g.find("<path d=\"").unwrap() + 9;
                &g[start..start + g[start..].find('"').unwrap()]
            })
            .collect()
    }

    #[test]
    fn the_checker_itself_rejects_broken_xml() {
        assert!(well_formed("<svg><g></svg>").is_err());
        assert!(well_formed("<svg><text>a < b</text></svg>").is_err());
        assert!(well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(well_formed("<svg x=1/>").is_err());
        assert!(well_formed("<svg/><svg/>").is_err());
        assert!(well_formed("<svg x=\"1\"><text>&amp;&#38;</text></svg>").is_ok());
    }

    #[test]
    fn escaping_in_svg() {
        let svg = svg(&nasty());
        well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.contains("T1 &quot;q&quot; &lt;b&gt; &amp; c"), "{svg}");
        assert!(svg.contains("second line"));
        assert!(svg.contains("a &quot;quoted&quot; &lt;title&gt; &amp; more\\"));
        assert!(svg.contains("w&lt;w"));
        assert!(svg.contains("it&apos;s &apos;so&apos;"));
        assert!(!svg.contains('\u{7}'));
    }

    #[test]
    fn escaping_in_dot() {
        let dot = dot(&nasty());
        dot_strings_ok(&dot).unwrap_or_else(|e| panic!("{e}\n{dot}"));
        assert!(dot.contains(r#"T1 \"q\" <b> & c\nsecond line\n"#), "{dot}");
        assert!(dot.contains(r#"T2 \\N back\\slash\n"#), "{dot}");
        assert!(dot.contains(r#"a \"quoted\" <title> & more\\""#), "{dot}");
        assert!(dot.contains(r#"tooltip="why \"1\" <&>""#), "{dot}");
        assert_eq!(dot_escape("a\"b\\c\nd\re"), r#"a\"b\\c\nd e"#);
    }

    #[test]
    fn xml_escape_covers_specials_and_control_characters() {
        assert_eq!(
            xml_escape("<a href=\"x\">'&'</a>\u{0}\u{FFFF}"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;  "
        );
    }

    #[test]
    fn counts_match_the_cycle() {
        let c = cycle(5, &["ww", "wr", "rw", "process", "realtime"]);
        let svg = svg(&c);
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches("<g class=\"node\">").count(), 5);
        assert_eq!(svg.matches("<g class=\"edge\">").count(), 5);
        assert_eq!(svg.matches("<g class=\"legend\">").count(), 5);
        assert_eq!(svg.matches("<marker ").count(), 5);
        for colour in ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#e377c2"] {
            assert!(svg.contains(colour), "{colour}");
        }
        let dot = dot(&c);
        assert!(dot_strings_ok(&dot).unwrap() > 0);
        let labelled = dot
            .lines()
            .filter(|l| l.starts_with("  n") && l.contains(" [label="));
        assert_eq!(labelled.count(), 10, "5 nodes and 5 edges\n{dot}");
        assert_eq!(dot.matches(" -> ").count(), 5);
        assert!(dot.contains("n4 -> n0 [label=\"realtime\""), "{dot}");
        assert!(dot.starts_with("digraph cycle {\n") && dot.ends_with("}\n"));
    }

    #[test]
    fn two_node_cycle_is_a_column_without_self_loops() {
        let c = cycle(2, &["wr", "rw"]);
        let svg = svg(&c);
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches("<g class=\"node\">").count(), 2);
        assert_eq!(svg.matches("<g class=\"edge\">").count(), 2);
        // Both arrows are bowed curves (quadratic), none is a loop (cubic).
        let edges = edge_paths(&svg);
        assert_eq!(edges.len(), 2);
        assert!(edges.iter().all(|d| d.contains(" Q") && !d.contains(" C")));
        let plan = Plan::new(&c);
        assert!(plan.edges.iter().all(|e| e.from != e.to));
        let boxes = Layout::new(&plan, node_boxes(&plan)).boxes;
        assert_eq!(boxes[0].x, boxes[1].x, "a column");
        assert!(boxes[0].y + boxes[0].half_h < boxes[1].y - boxes[1].half_h);
        let dot = dot(&c);
        assert!(dot.contains("n0 -> n1") && dot.contains("n1 -> n0"));
        assert!(!dot.contains("n0 -> n0") && !dot.contains("n1 -> n1"));
    }

    #[test]
    fn one_node_cycle_is_a_loop() {
        let svg = svg(&cycle(1, &["process"]));
        well_formed(&svg).unwrap();
        let edges = edge_paths(&svg);
        assert_eq!(edges.len(), 1);
        assert!(edges[0].contains(" C"), "{}", edges[0]);
    }

    #[test]
    fn empty_cycle_still_renders() {
        let c = CycleView::default();
        well_formed(&svg(&c)).unwrap();
        assert!(svg(&c).contains("(empty cycle)"));
        dot_strings_ok(&dot(&c)).unwrap();
    }

    #[test]
    fn at_most_max_nodes_are_drawn_and_the_rest_counted() {
        let c = cycle(100, &["ww", "rw"]);
        let svg = svg(&c);
        well_formed(&svg).unwrap();
        // 64 transactions and the "... 36 more" node, which keeps the loop closed.
        assert_eq!(svg.matches("<g class=\"node\">").count(), MAX_NODES + 1);
        assert_eq!(svg.matches("<g class=\"edge\">").count(), MAX_NODES + 1);
        assert!(svg.contains("... 36 more"));
        assert!(svg.contains("64 of 100 transactions drawn; 36 left out"));
        assert!(svg.contains("T63 (process"));
        assert!(!svg.contains("T64 (process"), "T64 is not drawn");
        let dot = dot(&c);
        assert_eq!(dot.matches(" -> ").count(), MAX_NODES + 1);
        assert!(dot.contains("n63 -> n64") && dot.contains("n64 -> n0"));
        assert!(dot.contains("36 left out"));
        // Exactly 64 is drawn whole.
        let svg = super::svg(&cycle(64, &["ww"]));
        assert_eq!(svg.matches("<g class=\"node\">").count(), 64);
        assert!(!svg.contains("left out"));
    }

    #[test]
    fn sizes_grow_with_nodes_and_labels() {
        let size = |svg: &str| -> (f64, f64) {
            let attr = |name: &str| -> f64 {
                let start = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                let end = start + svg[start..].find('"').unwrap();
                svg[start..end].parse().unwrap()
            };
            (attr("width"), attr("height"))
        };
        let small = size(&svg(&cycle(3, &["ww"])));
        let big = size(&svg(&cycle(30, &["ww"])));
        assert!(big.0 > small.0 && big.1 > small.1, "{small:?} {big:?}");
        let mut long = cycle(3, &["ww"]);
        long.nodes[0].label = "x".repeat(50);
        long.nodes[1].detail = (0..8)
            .map(|i| format!("r {i} nil"))
            .collect::<Vec<_>>()
            .join("; ");
        let wide = size(&svg(&long));
        assert!(wide.0 > small.0 && wide.1 > small.1, "{small:?} {wide:?}");
    }

    #[test]
    fn long_text_is_cut() {
        let mut c = cycle(3, &["ww"]);
        c.nodes[0].label = "y".repeat(10_000);
        c.nodes[1].detail = vec!["r 1 nil"; 1000].join("; ");
        let svg = svg(&c);
        assert!(!svg.contains(&"y".repeat(MAX_LINE_CHARS)));
        assert!(svg.contains(&format!("{}…", "y".repeat(MAX_LINE_CHARS - 1))));
        assert!(svg.contains(&format!("... {} more", 1000 - MAX_DETAIL_LINES)));
        assert!(svg.len() < 20_000, "{}", svg.len());
    }

    #[test]
    fn unknown_kinds_are_grey_and_missing_edges_skipped() {
        let mut c = cycle(3, &["weird"]);
        c.edges.truncate(2);
        let svg = svg(&c);
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches("<g class=\"edge\">").count(), 2);
        assert!(svg.contains("#7f7f7f"));
        assert!(svg.contains("weird: another kind of dependency"));
    }
}
