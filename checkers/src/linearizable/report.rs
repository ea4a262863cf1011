//! An HTML page that explains a linearizability verdict, in the spirit of Porcupine's
//! visualization: the verdict and its plain-text explanation, then a timeline with one row per
//! process and one bar per operation, the failing op and its concurrent ops outlined, and the
//! longest linearizable prefix drawn as numbered linearization points.
//!
//! The page is self-contained (inline CSS and a few lines of optional JS that highlight a bar when
//! its entry in a list is hovered) so that it can be attached to a bug report or opened from a CI
//! artifact offline. Everything taken from the history is escaped. The drawing is bounded: at most
//! [`MAX_CLIENT_OPS`] client operations, in a window around the failing op.
//!
//! The x axis is the order of events in the history (file order is real-time order; `time` may be
//! missing or non-monotone). Only the ranks of the drawn events count, so a key whose ops are
//! sparse in a long history is drawn as densely as a short history, with the same overlaps.

use super::{Failure, OpSummary, Outcome, Prefix, Validity};
use crate::history::{History, OpType, Process, Value};
use crate::text::clip;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;
use std::fmt::Write;

/// More client ops than this are windowed: a browser stays responsive with a few thousand SVG
/// elements, and the ops that explain a failure are the ones near it.
pub const MAX_CLIENT_OPS: usize = 2_000;
/// Nemesis ops and events are bounded apart so that a chatty nemesis cannot blow up the page.
const MAX_NEMESIS: usize = 2_000;
/// Tooltips and lists show at most this many characters of a value.
const MAX_TEXT: usize = 240;
/// Only the last linearization points get a number; older ones get a dot, to avoid clutter.
const NUMBERED_POINTS: usize = 40;
/// How many ops of each prefix's order the list shows (the end of the order is what matters).
const ORDER_SHOWN: usize = 60;

// Geometry, in px.
const ROW_H: f64 = 18.0;
const BAR_H: f64 = 12.0;
/// Room left of the first event, for the first axis label.
const LEFT: f64 = 16.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 8.0;
const RIGHT: f64 = 12.0;
/// The plot area aims at this width; slots stay between MIN_SLOT and MAX_SLOT px wide.
const PLOT_W: f64 = 1180.0;
const MIN_SLOT: f64 = 4.0;
const MAX_SLOT: f64 = 56.0;
/// Width of one character of the 10px monospace labels.
const CHAR_W: f64 = 6.1;

/// Renders the page. `outcome` should come from checking `history`; if its indices do not fit
/// the history the page says so instead of drawing them.
pub fn html(history: &History, outcome: &Outcome, title: &str) -> String {
    let fits = fits(history, outcome);
    let failure = outcome.failure.as_ref().filter(|_| fits);
    let plan = Plan::new(history, failure);
    let mut out = String::with_capacity(64 * 1024);
    page_head(&mut out, title);
    summary(&mut out, history, outcome, fits);
    if let Some(f) = failure {
        failure_section(&mut out, history, f, plan.key.as_ref());
    }
    timeline_section(&mut out, history, &plan, failure);
    if let Some(f) = failure {
        prefixes_section(&mut out, history, f, plan.key.as_ref());
    }
    page_tail(&mut out);
    out
}

/// Whether every index the outcome mentions exists in the history, so nothing below can index
/// out of bounds (and `Outcome::explain`, which indexes, is safe to call).
fn fits(h: &History, o: &Outcome) -> bool {
    let Some(f) = &o.failure else { return true };
    let ok = |i: usize| i < h.ops.len() && i < h.partner.len();
    ok(f.op.invoke_index)
        && f.concurrent.iter().all(|c| ok(c.invoke_index))
        && f.prefixes.iter().all(|p| p.order.iter().all(|&i| ok(i)))
}

/// How an operation ended, which decides its color.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ok,
    Fail,
    Info,
    Pending,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
            Kind::Pending => "pending",
        }
    }
}

/// One operation to draw: an invocation and its completion, if it has a well-formed one.
#[derive(Clone, Copy, Debug)]
struct Bar {
    invoke: usize,
    completion: Option<usize>,
    kind: Kind,
    /// A client op whose effect may land any time after its invocation: drawn to the right edge.
    open: bool,
}

impl Bar {
    fn of(h: &History, i: usize) -> Bar {
        let completion = h
            .partner
            .get(i)
            .copied()
            .flatten()
            .filter(|&c| c > i && h.ops.get(c).is_some_and(|o| o.op_type != OpType::Invoke));
        let kind = match completion.map(|c| h.ops[c].op_type) {
            Some(OpType::Ok) => Kind::Ok,
            Some(OpType::Fail) => Kind::Fail,
            Some(_) => Kind::Info,
            None => Kind::Pending,
        };
        // A nemesis op ending in info is its normal completion, not a crash.
        let open = matches!(kind, Kind::Info | Kind::Pending)
            && (h.ops[i].process.is_client() || completion.is_none());
        Bar {
            invoke: i,
            completion,
            kind,
            open,
        }
    }

    /// The last history index the bar covers, for overlap with a window.
    fn end(&self, h: &History) -> usize {
        match (self.open, self.completion) {
            (false, Some(c)) => c,
            _ => h.ops.len(),
        }
    }
}

/// What the timeline draws, chosen before any drawing so the bounds are easy to see.
struct Plan {
    /// Client and named-process ops, by invocation index.
    bars: Vec<Bar>,
    /// Standalone `info` events (no invocation), by index.
    events: Vec<usize>,
    /// Client ops that matched the key filter, before windowing.
    client_total: usize,
    client_drawn: usize,
    /// When windowed: the history indices of the first and last drawn client invocation.
    window: Option<(usize, usize)>,
    key: Option<Value>,
}

impl Plan {
    fn new(h: &History, failure: Option<&Failure>) -> Plan {
        let key = failure.and_then(|f| f.key.clone());
        let (clients, named, events) = candidates(h, key.as_ref());
        let client_total = clients.len();
        let range = window(&clients, failure.map(|f| f.op.invoke_index));
        let clients = &clients[range.clone()];
        let windowed = range.len() < client_total;
        let (lo, hi) = match (clients.first(), windowed) {
            (Some(first), true) => (first.invoke, domain_end(h, clients)),
            _ => (0, h.ops.len()),
        };
        let mut bars: Vec<Bar> = named
            .into_iter()
            .filter(|b| b.invoke <= hi && b.end(h) >= lo)
            .take(MAX_NEMESIS)
            .collect();
        bars.extend_from_slice(clients);
        bars.sort_by_key(|b| b.invoke);
        let events = events
            .into_iter()
            .filter(|&e| (lo..=hi).contains(&e))
            .take(MAX_NEMESIS)
            .collect();
        Plan {
            bars,
            events,
            client_total,
            client_drawn: clients.len(),
            window: windowed.then(|| (lo, clients.last().map_or(lo, |b| b.invoke))),
            key,
        }
    }
}

/// Client ops of the key (all, without a key), named-process ops, and standalone events.
fn candidates(h: &History, key: Option<&Value>) -> (Vec<Bar>, Vec<Bar>, Vec<usize>) {
    let (mut clients, mut named, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for (i, op) in h.ops.iter().enumerate() {
        let client = op.process.is_client();
        if op.op_type == OpType::Invoke {
            let bar = Bar::of(h, i);
            let of_key = of_key(&op.value, key)
                || bar.completion.is_some_and(|c| of_key(&h.ops[c].value, key));
            match (client, of_key) {
                (false, _) => named.push(bar),
                (true, true) => clients.push(bar),
                (true, false) => {}
            }
        } else if standalone(h, i)
            && op.op_type == OpType::Info
            && (!client || of_key(&op.value, key))
        {
            events.push(i);
        }
    }
    (clients, named, events)
}

/// Keyed models write an op's value as `[key, v]`; without a key every op belongs.
fn of_key(v: &Value, key: Option<&Value>) -> bool {
    match key {
        Some(k) => v.as_array().and_then(|a| a.first()) == Some(k),
        None => true,
    }
}

/// A completion without an invocation, such as a nemesis's `info` event.
fn standalone(h: &History, i: usize) -> bool {
    !matches!(h.partner.get(i), Some(Some(_)))
}

/// The range of `clients` to draw: all of them, or MAX_CLIENT_OPS centered on the failing op.
fn window(clients: &[Bar], failing: Option<usize>) -> std::ops::Range<usize> {
    let n = clients.len();
    if n <= MAX_CLIENT_OPS {
        return 0..n;
    }
    let center = failing.map_or(0, |f| clients.partition_point(|b| b.invoke < f));
    let start = center
        .saturating_sub(MAX_CLIENT_OPS / 2)
        .min(n - MAX_CLIENT_OPS);
    start..start + MAX_CLIENT_OPS
}

/// The last history index a window of client ops reaches (completions included).
fn domain_end(h: &History, clients: &[Bar]) -> usize {
    clients
        .iter()
        .map(|b| b.completion.unwrap_or(b.invoke))
        .max()
        .unwrap_or(0)
        .min(h.ops.len())
}

/// Maps history indices and processes to pixels.
struct Layout {
    /// The sorted, distinct history indices of every drawn event; x is the rank in this list.
    ranks: Vec<usize>,
    rows: Vec<Process>,
    slot: f64,
}

impl Layout {
    fn new(h: &History, plan: &Plan) -> Layout {
        let mut ranks: Vec<usize> = plan.events.clone();
        let mut rows = BTreeSet::new();
        for b in &plan.bars {
            ranks.push(b.invoke);
            ranks.extend(b.completion);
            rows.insert(&h.ops[b.invoke].process);
        }
        rows.extend(plan.events.iter().map(|&e| &h.ops[e].process));
        ranks.sort_unstable();
        ranks.dedup();
        let slot = (PLOT_W / (ranks.len() as f64 + 1.0)).clamp(MIN_SLOT, MAX_SLOT);
        Layout {
            ranks,
            // Process orders clients numerically, then named processes such as the nemesis.
            rows: rows.into_iter().cloned().collect(),
            slot,
        }
    }

    fn x(&self, index: usize) -> f64 {
        let rank = self.ranks.partition_point(|&e| e < index);
        LEFT + (rank as f64 + 0.5) * self.slot
    }

    /// Where open-ended bars stop: one slot past the last event.
    fn right(&self) -> f64 {
        LEFT + (self.ranks.len() as f64 + 0.5) * self.slot
    }

    fn width(&self) -> f64 {
        self.right() + self.slot / 2.0 + RIGHT
    }

    fn height(&self) -> f64 {
        TOP + self.rows.len().max(1) as f64 * ROW_H + BOTTOM
    }

    fn row_top(&self, p: &Process) -> f64 {
        let row = self.rows.binary_search(p).unwrap_or(0);
        TOP + row as f64 * ROW_H
    }

    /// Left x, right x and center y of a bar.
    fn span(&self, h: &History, b: &Bar) -> (f64, f64, f64) {
        let x0 = self.x(b.invoke);
        let x1 = match (b.open, b.completion) {
            (false, Some(c)) => self.x(c),
            _ => self.right(),
        };
        let y = self.row_top(&h.ops[b.invoke].process) + ROW_H / 2.0;
        (x0, x1.max(x0 + 3.0), y)
    }
}

/// Which ops the failure singles out.
#[derive(Default)]
struct Marks {
    failing: Option<usize>,
    concurrent: FxHashSet<usize>,
    /// Why the failing op cannot follow the longest prefix, for its tooltip.
    why: String,
}

impl Marks {
    fn new(failure: Option<&Failure>) -> Marks {
        let Some(f) = failure else {
            return Marks::default();
        };
        Marks {
            failing: Some(f.op.invoke_index),
            concurrent: f.concurrent.iter().map(|c| c.invoke_index).collect(),
            why: f.prefixes.first().map_or(String::new(), |p| {
                let state = clip(&p.state, MAX_TEXT);
                format!(
                    ": after {} ops the state is {state}; {}",
                    prefix_len(p),
                    p.reason
                )
            }),
        }
    }

    fn class(&self, i: usize) -> &'static str {
        if self.failing == Some(i) {
            " failing"
        } else if self.concurrent.contains(&i) {
            " concurrent"
        } else {
            ""
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text helpers.

/// Escapes for HTML text and attribute values alike. Control characters other than newline and
/// tab are not allowed in XML even as references, so they become U+FFFD.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A value without the partition key when the page is about one key.
fn unkeyed<'a>(v: &'a Value, key: Option<&Value>) -> &'a Value {
    match (v.as_array(), key) {
        (Some(a), Some(k)) if a.len() == 2 && a.first() == Some(k) => &a[1],
        _ => v,
    }
}

/// A value as (clipped) JSON, without the partition key when the page is about one key.
fn show(v: &Value, key: Option<&Value>) -> String {
    clip(&unkeyed(v, key).to_string(), MAX_TEXT)
}

/// The short text on a bar: `write 1`, `read → 1`, `cas [1,2]`.
fn bar_label(h: &History, b: &Bar, key: Option<&Value>) -> String {
    let inv = &h.ops[b.invoke];
    let v = unkeyed(&inv.value, key);
    let mut s = inv.f.clone();
    if !v.is_null() {
        s.push(' ');
        s.push_str(&show(v, None));
    }
    if let Some(c) = b.completion.map(|c| &h.ops[c]) {
        let cv = unkeyed(&c.value, key);
        if c.op_type == OpType::Ok && (cv != v || v.is_null()) {
            s.push_str(" → ");
            s.push_str(&show(cv, None));
        }
    }
    s
}

fn line_of(h: &History, i: usize) -> String {
    h.lines.get(i).map_or("?".to_string(), |l| l.to_string())
}

/// The tooltip of a bar: what it did, who, where in the history and the file.
fn bar_tooltip(h: &History, b: &Bar, note: &str) -> String {
    let inv = &h.ops[b.invoke];
    let done = match b.completion.map(|c| &h.ops[c]) {
        Some(c) => format!("{} {}", c.op_type.as_str(), show(&c.value, None)),
        None => "pending (never completed)".to_string(),
    };
    let span = match b.completion {
        Some(c) => format!(
            "ops {}..{c}, lines {}..{}",
            b.invoke,
            line_of(h, b.invoke),
            line_of(h, c)
        ),
        None => format!("op {}.., line {}", b.invoke, line_of(h, b.invoke)),
    };
    format!(
        "{} {} -> {done}\nprocess {}, {span}{note}",
        clip(&inv.f, MAX_TEXT),
        show(&inv.value, None),
        who(&inv.process),
    )
}

/// A process as tooltips name it; Jepsen allows any keyword, so long names are cut.
fn who(p: &Process) -> String {
    clip(&super::process_label(p), 40)
}

fn summary_text(h: &History, s: &OpSummary, key: Option<&Value>) -> String {
    let end = s.completion_index.map_or(String::new(), |c| c.to_string());
    format!(
        "{} {} {} {} (ops {}..{end}, line {})",
        process_text(&s.process),
        s.outcome,
        clip(&s.f, MAX_TEXT),
        show(&s.value, key),
        s.invoke_index,
        line_of(h, s.invoke_index)
    )
}

fn process_text(p: &Value) -> String {
    match p {
        Value::String(s) => clip(s, 40),
        other => format!("p{other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The page around the timeline.

fn page_head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    );
}

fn page_tail(out: &mut String) {
    let _ = write!(out, "<script>{JS}</script>\n</body>\n</html>\n");
}

fn verdict(o: &Outcome) -> (&'static str, String) {
    match o.valid {
        Validity::Valid => ("valid", "valid: linearizable".to_string()),
        Validity::Invalid => ("invalid", "NOT linearizable".to_string()),
        Validity::Unknown => (
            "unknown",
            format!("unknown ({})", o.cause.as_deref().unwrap_or("limit")),
        ),
    }
}

fn summary(out: &mut String, h: &History, o: &Outcome, fits: bool) {
    let (class, text) = verdict(o);
    let _ = writeln!(out, "<div class=\"verdict {class}\">{}</div>", esc(&text));
    let s = &o.semantics;
    let kebab = |v: serde_json::Result<Value>| v.ok().and_then(|v| v.as_str().map(String::from));
    let semantics = format!(
        "initial {}, nil read {}, fail {}",
        clip(&s.initial.to_string(), MAX_TEXT),
        kebab(serde_json::to_value(s.nil_read)).unwrap_or_default(),
        kebab(serde_json::to_value(s.fail)).unwrap_or_default()
    );
    let mut facts = vec![
        ("model", o.model.clone()),
        ("semantics", semantics),
        (
            "history",
            format!("{} ({}, {} events)", h.file, h.format.name(), h.len()),
        ),
        (
            "ops checked",
            format!("{} ({} crashed)", o.ops, o.crashed_ops),
        ),
        ("partitions", o.partitions.to_string()),
        ("configurations", o.configurations.to_string()),
    ];
    if let Some(k) = o.failure.as_ref().and_then(|f| f.key.as_ref()) {
        facts.push(("failing key", clip(&k.to_string(), MAX_TEXT)));
    }
    out.push_str("<dl class=\"facts\">\n");
    for (k, v) in facts {
        let _ = writeln!(out, "<div><dt>{k}</dt><dd>{}</dd></div>", esc(&v));
    }
    out.push_str("</dl>\n");
    let explanation = if fits {
        o.explain(h)
    } else {
        "the outcome names operations this history does not have; was it checked against \
         another history?\n"
            .to_string()
    };
    let _ = writeln!(out, "<pre class=\"explain\">{}</pre>", esc(&explanation));
}

fn failure_section(out: &mut String, h: &History, f: &Failure, key: Option<&Value>) {
    out.push_str("<div class=\"failure\">\n");
    let _ = writeln!(
        out,
        "<p><span class=\"sw failing\"></span><b>Cannot be linearized:</b> <code data-op=\"{}\">{}</code></p>",
        f.op.invoke_index,
        esc(&summary_text(h, &f.op, key))
    );
    let _ = writeln!(
        out,
        "<p><span class=\"sw concurrent\"></span>{} concurrent op(s) overlap it.</p>",
        f.concurrent.len()
    );
    if let Some(p) = f.prefixes.first() {
        let _ = writeln!(
            out,
            "<p><span class=\"sw lin\"></span>After the longest linearizable prefix ({} ops, \
             numbered on the timeline) the state is <code>{}</code>: {}</p>",
            prefix_len(p),
            esc(&clip(&p.state, MAX_TEXT)),
            esc(&p.reason)
        );
    }
    out.push_str("</div>\n");
}

fn timeline_section(out: &mut String, h: &History, plan: &Plan, failure: Option<&Failure>) {
    out.push_str("<h2 id=\"timeline\">Timeline</h2>\n<p class=\"note\">");
    let _ = write!(
        out,
        "One row per process, one bar per operation from invocation to completion. The x axis is \
         the order of events in the history (labels are history indices); gaps are compressed."
    );
    if let Some(k) = &plan.key {
        let _ = write!(
            out,
            " Only ops of key <code>{}</code> are drawn (plus nemesis events).",
            esc(&clip(&k.to_string(), MAX_TEXT))
        );
    }
    if let Some((lo, hi)) = plan.window {
        let _ = write!(
            out,
            " <b class=\"windowed\">Windowed:</b> drawing {} of {} client operations (history \
             indices {lo}–{hi}), {}.",
            plan.client_drawn,
            plan.client_total,
            if failure.is_some() {
                "around the failing op"
            } else {
                "the first ones"
            }
        );
    }
    out.push_str("</p>\n");
    out.push_str(LEGEND);
    let l = Layout::new(h, plan);
    // Row labels are HTML beside the scrolling SVG, so they stay visible when it scrolls.
    let _ = write!(
        out,
        "<div class=\"tl\"><div class=\"rowlbls\" style=\"padding-top:{TOP}px\">"
    );
    for (r, p) in l.rows.iter().enumerate() {
        let name = super::process_label(p);
        let _ = write!(
            out,
            "<div class=\"rowlbl{}\" title=\"{}\">{}</div>",
            if r % 2 == 0 { " even" } else { "" },
            esc(&clip(&name, MAX_TEXT)),
            esc(&clip(&name, 10))
        );
    }
    out.push_str("</div>\n<div class=\"scroll\">\n");
    svg(out, h, l, plan, failure);
    out.push_str("</div></div>\n");
}

fn prefixes_section(out: &mut String, h: &History, f: &Failure, key: Option<&Value>) {
    if f.prefixes.is_empty() {
        return;
    }
    out.push_str("<h2>Longest linearizable prefixes</h2>\n<ol class=\"prefixes\">\n");
    for p in &f.prefixes {
        prefix_item(out, h, p, key);
    }
    out.push_str("</ol>\n");
}

/// The prefix's length: `order` holds only its last ops.
fn prefix_len(p: &Prefix) -> usize {
    p.elided.saturating_add(p.order.len())
}

fn prefix_item(out: &mut String, h: &History, p: &Prefix, key: Option<&Value>) {
    let _ = write!(
        out,
        "<li><div>{} ops &#8594; state <code>{}</code>: {}</div>\n<div class=\"order\">",
        prefix_len(p),
        esc(&clip(&p.state, MAX_TEXT)),
        esc(&p.reason)
    );
    let skip = p.order.len().saturating_sub(ORDER_SHOWN);
    if skip + p.elided > 0 {
        let earlier = skip + p.elided;
        let _ = write!(out, "<span class=\"more\">… {earlier} earlier ops</span> ");
    }
    for (k, &i) in p.order.iter().enumerate().skip(skip) {
        let b = Bar::of(h, i);
        let _ = write!(
            out,
            "<span class=\"lo\" data-op=\"{i}\" title=\"{}\"><i>{}</i> {} {}</span> ",
            esc(&bar_tooltip(h, &b, "")),
            p.elided + k + 1,
            esc(&who(&h.ops[i].process)),
            esc(&clip(&bar_label(h, &b, key), 40))
        );
    }
    out.push_str("</div></li>\n");
}

// ---------------------------------------------------------------------------------------------
// The timeline.

fn svg(out: &mut String, h: &History, l: Layout, plan: &Plan, failure: Option<&Failure>) {
    let (w, ht) = (l.width(), l.height());
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"{w:.0}\" \
         height=\"{ht:.0}\" viewBox=\"0 0 {w:.0} {ht:.0}\">\n{SVG_DEFS}"
    );
    rows(out, &l);
    axis(out, &l, ht);
    bands(out, h, &l);
    if plan.bars.is_empty() && plan.events.is_empty() {
        let _ = writeln!(
            out,
            "<text class=\"empty\" x=\"{LEFT}\" y=\"{}\">no operations to draw</text>",
            TOP + 12.0
        );
    }
    let points = failure
        .and_then(|f| f.prefixes.first())
        .map_or_else(Vec::new, |p| lin_points(h, &l, plan, p));
    let cx = Ctx {
        h,
        limits: label_limits(h, &l, plan),
        points: points.iter().map(|p| (p.invoke, *p)).collect(),
        l,
        marks: Marks::new(failure),
        key: plan.key.as_ref(),
    };
    if let Some(b) = cx
        .marks
        .failing
        .and_then(|f| plan.bars.iter().find(|b| b.invoke == f))
    {
        failing_band(out, &cx.l, h, b);
    }
    // The order's line goes under the bars so it never crosses a label; badges go on top.
    lin_line(out, &points);
    for b in &plan.bars {
        bar(out, &cx, b);
    }
    for &e in &plan.events {
        event(out, &cx, e);
    }
    lin_badges(out, &points);
    out.push_str("</svg>\n");
}

/// What drawing one bar or event needs to know about the rest of the timeline.
struct Ctx<'a> {
    h: &'a History,
    l: Layout,
    marks: Marks,
    key: Option<&'a Value>,
    /// By history index: how far right the label of a bar or event may run.
    limits: FxHashMap<usize, f64>,
    /// By invocation index: the op's linearization point, if it has one.
    points: FxHashMap<usize, Point>,
}

/// Alternating row backgrounds, matching the HTML row labels beside the SVG.
fn rows(out: &mut String, l: &Layout) {
    for r in (0..l.rows.len()).step_by(2) {
        let y = TOP + r as f64 * ROW_H;
        let _ = writeln!(
            out,
            "<rect class=\"row\" x=\"0\" y=\"{y:.1}\" width=\"{:.0}\" height=\"{ROW_H}\"/>",
            l.width()
        );
    }
}

/// Ticks at about every 70px, labeled with the history index of the event at that rank.
fn axis(out: &mut String, l: &Layout, height: f64) {
    let every = ((70.0 / l.slot).ceil() as usize).max(1);
    for (r, &index) in l.ranks.iter().enumerate().step_by(every) {
        let x = LEFT + (r as f64 + 0.5) * l.slot;
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{:.0}\"/>\
             <text class=\"axis\" x=\"{x:.1}\" y=\"{:.0}\">{index}</text>",
            TOP - 4.0,
            height - BOTTOM,
            TOP - 8.0
        );
    }
}

/// Shades the time between a nemesis `start…` and the next `stop…`, across all rows.
fn bands(out: &mut String, h: &History, l: &Layout) {
    let (Some(&lo), Some(&hi)) = (l.ranks.first(), l.ranks.last()) else {
        return;
    };
    let visible = nemesis_bands(h)
        .into_iter()
        .filter(|&(start, stop)| start <= hi && stop.unwrap_or(usize::MAX) >= lo);
    for (start, stop) in visible.take(MAX_NEMESIS) {
        let x0 = l.x(start);
        let x1 = stop.map_or(l.right(), |s| l.x(s));
        let op = &h.ops[start];
        let until = stop.map_or("the end".to_string(), |s| format!("op {s}"));
        let _ = writeln!(
            out,
            "<rect class=\"band\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.0}\">\
             <title>{}</title></rect>",
            (x1 - x0).max(2.0),
            l.rows.len() as f64 * ROW_H,
            esc(&format!(
                "{} {} {} (op {start}, line {}) until {until}",
                who(&op.process),
                clip(&op.f, MAX_TEXT),
                show(&op.value, None),
                line_of(h, start),
            ))
        );
    }
}

/// A red band over the failing op's interval across all rows, with a mark on the axis: in a
/// dense timeline its bar alone is a few pixels wide.
fn failing_band(out: &mut String, l: &Layout, h: &History, b: &Bar) {
    let (x0, x1, _) = l.span(h, b);
    let _ = writeln!(
        out,
        "<rect class=\"failband\" x=\"{x0:.1}\" y=\"{:.0}\" width=\"{:.1}\" height=\"{:.0}\"/>\
         <path class=\"failmark\" d=\"M{:.1} {:.0}l-5 -7h10z\"/>",
        TOP - 3.0,
        (x1 - x0).max(3.0),
        l.rows.len() as f64 * ROW_H + 3.0,
        x0 + (x1 - x0).min(l.slot) / 2.0,
        TOP - 3.0,
    );
}

/// Intervals from a named process's `start…` op to the next `stop…` op, by history index.
fn nemesis_bands(h: &History) -> Vec<(usize, Option<usize>)> {
    let mut bands = Vec::new();
    let mut open: Option<usize> = None;
    for (i, op) in h.ops.iter().enumerate() {
        let counts = !op.process.is_client() && (op.op_type == OpType::Invoke || standalone(h, i));
        if !counts {
            continue;
        }
        match (open, op.f.starts_with("start"), op.f.starts_with("stop")) {
            (None, true, _) => open = Some(i),
            (Some(s), _, true) => {
                bands.push((s, Some(i)));
                open = None;
            }
            _ => {}
        }
    }
    bands.extend(open.map(|s| (s, None)));
    bands
}

/// How far right each label may run: to the next bar or event on its row, so that a short bar
/// (one slot) can still be read when its row is free after it.
fn label_limits(h: &History, l: &Layout, plan: &Plan) -> FxHashMap<usize, f64> {
    let mut items: Vec<usize> = plan.bars.iter().map(|b| b.invoke).collect();
    items.extend(&plan.events);
    items.sort_unstable();
    let mut next: FxHashMap<&Process, f64> = FxHashMap::default();
    let mut limits = FxHashMap::default();
    for &i in items.iter().rev() {
        let p = &h.ops[i].process;
        limits.insert(i, next.get(p).copied().unwrap_or(l.width()));
        // Events are drawn centered on their x; leave room for the marker.
        next.insert(p, l.x(i) - 7.0);
    }
    limits
}

fn bar(out: &mut String, cx: &Ctx, b: &Bar) {
    let (h, l) = (cx.h, &cx.l);
    let (x0, x1, yc) = l.span(h, b);
    let y = yc - BAR_H / 2.0;
    let named = !h.ops[b.invoke].process.is_client();
    let mark = cx.marks.class(b.invoke);
    let note = match mark {
        " failing" => format!("\ncannot be linearized{}", cx.marks.why),
        " concurrent" => "\nconcurrent with the failing op".to_string(),
        _ => String::new(),
    };
    let _ = write!(
        out,
        "<g class=\"opg\"><title>{}</title><rect id=\"op-{}\" class=\"op {}{}{mark}\" \
         x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR_H}\" rx=\"3\"/>",
        esc(&bar_tooltip(h, b, &note)),
        b.invoke,
        b.kind.class(),
        if named { " nem" } else { "" },
        x1 - x0
    );
    // A crashed op's info completion is only when the client gave up; mark it inside the bar.
    if let (true, Some(c)) = (b.open, b.completion) {
        let xc = l.x(c);
        let _ = write!(
            out,
            "<line class=\"gaveup\" x1=\"{xc:.1}\" y1=\"{y:.1}\" x2=\"{xc:.1}\" y2=\"{:.1}\"/>",
            y + BAR_H
        );
    }
    let mut text = bar_label(h, b, cx.key);
    if cx.marks.failing == Some(b.invoke) {
        text = format!("✗ {text}");
    }
    // The label starts after the op's linearization badge, which sits near the bar's start.
    let from = cx.points.get(&b.invoke).map_or(x0, |p| p.right().max(x0));
    let to = x1.max(cx.limits.get(&b.invoke).copied().unwrap_or(x1));
    label(out, &text, from, to, yc);
    out.push_str("</g>\n");
}

/// `text` between `from` and `to`, clipped to fit, or nothing if even 3 characters do not fit.
fn label(out: &mut String, text: &str, from: f64, to: f64, yc: f64) {
    let room = ((to - from - 6.0) / CHAR_W).floor();
    if room < 3.0 {
        return;
    }
    let _ = write!(
        out,
        "<text class=\"lbl\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        from + 4.0,
        yc + 3.5,
        esc(&clip(text, room as usize))
    );
}

/// A standalone info (a nemesis event, typically): a diamond on its process's row, labeled
/// with its `f` when there is room.
fn event(out: &mut String, cx: &Ctx, e: usize) {
    let (h, l) = (cx.h, &cx.l);
    let op = &h.ops[e];
    let x = l.x(e);
    let y = l.row_top(&op.process) + ROW_H / 2.0;
    let _ = write!(
        out,
        "<g class=\"evg\"><title>{}</title><path class=\"event\" \
         d=\"M{x:.1} {:.1}L{:.1} {y:.1}L{x:.1} {:.1}L{:.1} {y:.1}Z\"/>",
        esc(&format!(
            "{} info {} {}\nop {e}, line {}",
            who(&op.process),
            clip(&op.f, MAX_TEXT),
            show(&op.value, None),
            line_of(h, e)
        )),
        y - 5.5,
        x + 5.5,
        y + 5.5,
        x - 5.5,
    );
    let to = cx.limits.get(&e).copied().unwrap_or(x);
    label(out, &op.f, x + 3.0, to, y);
    out.push_str("</g>\n");
}

/// A linearization point: the op's position in the prefix's order and where it is drawn.
#[derive(Clone, Copy, Debug)]
struct Point {
    invoke: usize,
    /// 1-based position in the order.
    k: usize,
    x: f64,
    y: f64,
    numbered: bool,
}

impl Point {
    /// The badge's width: a number in a pill, or a dot.
    fn width(&self) -> f64 {
        match self.numbered {
            true => 5.5 * self.k.to_string().len() as f64 + 6.0,
            false => 5.0,
        }
    }

    fn right(&self) -> f64 {
        self.x + self.width() / 2.0
    }
}

/// The prefix's order as points on the drawn bars: each op's point is as early as its
/// invocation allows but not before the previous point, which is how a valid order is placed
/// in real time.
fn lin_points(h: &History, l: &Layout, plan: &Plan, p: &Prefix) -> Vec<Point> {
    let drawn: FxHashMap<usize, &Bar> = plan.bars.iter().map(|b| (b.invoke, b)).collect();
    let mut points = Vec::new();
    let mut prev = f64::MIN;
    for (k, i) in p.order.iter().enumerate() {
        let Some(b) = drawn.get(i) else { continue };
        let (x0, x1, y) = l.span(h, b);
        let x = (prev + 2.0).max(x0 + 7.0).min(x1 - 2.0).max(x0);
        prev = x;
        let (invoke, k) = (*i, p.elided + k + 1);
        let numbered = false;
        points.push(Point {
            invoke,
            k,
            x,
            y,
            numbered,
        });
    }
    number_last(&mut points);
    points
}

/// Numbers the last NUMBERED_POINTS points, except where a badge would cover a later badge on
/// the same row (when slots are narrow): overlapping numbers are unreadable.
fn number_last(points: &mut [Point]) {
    let from = points.len().saturating_sub(NUMBERED_POINTS);
    let mut leftmost: FxHashMap<u64, f64> = FxHashMap::default();
    for p in points[from..].iter_mut().rev() {
        p.numbered = true;
        let row = p.y.to_bits();
        let free = p.right() + 1.0 < leftmost.get(&row).copied().unwrap_or(f64::INFINITY);
        p.numbered = free;
        if free {
            leftmost.insert(row, p.x - p.width() / 2.0);
        }
    }
}

/// Joins the numbered points in order. Older points are not joined: across thousands of ops the
/// line would only be noise.
fn lin_line(out: &mut String, points: &[Point]) {
    let numbered = &points[points.len().saturating_sub(NUMBERED_POINTS)..];
    if numbered.len() < 2 {
        return;
    }
    out.push_str("<polyline class=\"lin\" points=\"");
    for p in numbered {
        let _ = write!(out, "{:.1},{:.1} ", p.x, p.y);
    }
    out.push_str("\"/>\n");
}

/// Numbers the last points with their position in the order; older ones get a dot.
fn lin_badges(out: &mut String, points: &[Point]) {
    for p in points {
        let (x, y, k) = (p.x, p.y, p.k);
        if !p.numbered {
            let _ = writeln!(
                out,
                "<circle class=\"lp\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\"/>"
            );
            continue;
        }
        let w = p.width();
        let _ = writeln!(
            out,
            "<g class=\"lpn\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"11\" \
             rx=\"5.5\"/><text x=\"{x:.1}\" y=\"{:.1}\">{k}</text></g>",
            x - w / 2.0,
            y - 5.5,
            y + 3.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Static parts.

const SVG_DEFS: &str = "<defs>\
<linearGradient id=\"fade-info\"><stop offset=\"0\" stop-color=\"#f6d58e\"/>\
<stop offset=\"0.5\" stop-color=\"#f6d58e\"/><stop offset=\"1\" stop-color=\"#f6d58e\" stop-opacity=\"0.1\"/></linearGradient>\
<linearGradient id=\"fade-pending\"><stop offset=\"0\" stop-color=\"#d9d9d9\"/>\
<stop offset=\"0.5\" stop-color=\"#d9d9d9\"/><stop offset=\"1\" stop-color=\"#d9d9d9\" stop-opacity=\"0.1\"/></linearGradient>\
</defs>\n";

const LEGEND: &str = "<div class=\"legend\">\
<span><span class=\"sw ok\"></span>ok</span>\
<span><span class=\"sw fail\"></span>fail (no effect)</span>\
<span><span class=\"sw info\"></span>info (crashed: may take effect any time later)</span>\
<span><span class=\"sw pending\"></span>never completed</span>\
<span><span class=\"sw nem\"></span>nemesis</span>\
<span><span class=\"sw failing\"></span>cannot be linearized</span>\
<span><span class=\"sw concurrent\"></span>concurrent with it</span>\
<span><span class=\"sw lin\"></span>linearization order of the longest prefix</span>\
</div>\n";

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:20px 28px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 10px}
h2{font-size:16px;margin:22px 0 6px}
code,pre,.facts dd{font-family:ui-monospace,'SFMono-Regular',Menlo,Consolas,monospace;font-size:12.5px}
.verdict{display:inline-block;padding:3px 12px;border-radius:4px;font-weight:600;font-size:15px}
.verdict.valid{background:#dcf2de;color:#1b5e20}
.verdict.invalid{background:#fde2e1;color:#b3261e}
.verdict.unknown{background:#fff1cc;color:#7a5200}
dl.facts{display:flex;flex-wrap:wrap;gap:2px 28px;margin:10px 0}
.facts div{display:flex;gap:8px;max-width:100%}
.facts dt{color:#59636e}
.facts dd{margin:0;word-break:break-all}
pre.explain{background:#f6f8fa;border:1px solid #d8dee4;border-radius:4px;padding:8px 10px;overflow:auto;max-height:300px;margin:8px 0}
.failure p{margin:4px 0}
.note{color:#59636e;margin:4px 0 8px;max-width:1100px}
.windowed{color:#b3261e}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px;margin:0 0 8px;color:#333}
.sw{display:inline-block;width:22px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px;border:1px solid #888;box-sizing:border-box}
.sw.ok{background:#cfe2f7;border-color:#4a7ab5}
.sw.fail{background:#e6e6e6;border-color:#9a9a9a}
.sw.info{background:linear-gradient(90deg,#f6d58e 50%,#fdf5e3);border:1px dashed #c58f1d}
.sw.pending{background:linear-gradient(90deg,#d9d9d9 50%,#f7f7f7);border:1px dashed #8c8c8c}
.sw.nem{background:#e6dcf3;border-color:#7d5ba6}
.sw.failing{background:#fff;border:3px solid #d62728}
.sw.concurrent{background:#fff;border:2px solid #f08c00}
.sw.lin{background:#fff;border:0;height:2px;border-top:2px solid #2b2b2b;vertical-align:3px}
.scroll{overflow-x:auto;flex:1 1 auto}
svg.timeline{display:block}
svg.timeline text{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:10px}
.row{fill:#f6f8fa}
.tl{display:flex;border:1px solid #d8dee4;border-radius:4px;overflow:hidden}
.rowlbls{flex:none;min-width:56px;border-right:1px solid #d8dee4;padding-bottom:8px}
.rowlbl{font:600 10px/18px ui-monospace,Menlo,Consolas,monospace;height:18px;padding:1px 8px 0;box-sizing:border-box;overflow:hidden;text-align:right;white-space:nowrap;color:#444}
.rowlbl.even{background:#f6f8fa}
.grid{stroke:#e3e6ea;stroke-width:1}
.axis{fill:#8a8f96;text-anchor:middle}
.band{fill:#7d5ba6;fill-opacity:0.08}
.failband{fill:#d62728;fill-opacity:0.07;pointer-events:none}
.failmark{fill:#d62728}
.op{stroke-width:1}
.op.ok{fill:#cfe2f7;stroke:#4a7ab5}
.op.fail{fill:#e6e6e6;stroke:#9a9a9a}
.op.info{fill:url(#fade-info);stroke:#c58f1d;stroke-dasharray:5 3}
.op.pending{fill:url(#fade-pending);stroke:#8c8c8c;stroke-dasharray:3 3}
.op.nem{fill:#e6dcf3;stroke:#7d5ba6;stroke-dasharray:none}
.op.concurrent{stroke:#f08c00;stroke-width:2;stroke-dasharray:none}
.op.failing{stroke:#d62728;stroke-width:3;stroke-dasharray:none}
.opg:hover .op,.op.hl{stroke:#111;stroke-width:2.5}
.gaveup{stroke:#c58f1d;stroke-width:1.5}
.lbl{fill:#1f2328;pointer-events:none}
.evg .lbl{fill:#5b3f80}
.event{fill:#7d5ba6;stroke:#fff;stroke-width:1}
.lin{fill:none;stroke:#2b2b2b;stroke-width:1.3;stroke-opacity:0.6;pointer-events:none}
.lp{fill:#2b2b2b;fill-opacity:0.45}
.lpn{pointer-events:none}
.lpn rect{fill:#2b2b2b}
svg.timeline .lpn text{fill:#fff;font-size:8.5px;font-weight:700;text-anchor:middle}
.empty{fill:#888}
ol.prefixes{padding-left:22px}
ol.prefixes li{margin-bottom:10px}
.order{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;line-height:1.9;margin-top:2px}
.lo{display:inline-block;background:#f1f3f5;border:1px solid #d8dee4;border-radius:3px;padding:0 5px;margin:0 2px 2px 0;cursor:default;white-space:nowrap}
.lo i{font-style:normal;color:#fff;background:#2b2b2b;border-radius:6px;padding:0 4px;margin-right:3px;font-size:10.5px}
.lo:hover{background:#fff3bf}
.more{color:#59636e}
";

/// Optional: hovering an op in a list outlines its bar, and a wide timeline starts scrolled to
/// the failing op. The page reads the same without it.
const JS: &str = "document.querySelectorAll('[data-op]').forEach(function(e){\
var b=document.getElementById('op-'+e.getAttribute('data-op'));if(!b)return;\
e.addEventListener('mouseenter',function(){b.classList.add('hl')});\
e.addEventListener('mouseleave',function(){b.classList.remove('hl')});});\
var f=document.querySelector('rect.failing'),s=document.querySelector('.scroll');\
if(f&&s){s.scrollLeft=f.x.baseVal.value-s.clientWidth/2;}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Format, Op};
    use crate::linearizable::Semantics;
    use serde_json::json;

    fn op(t: OpType, p: u64, f: &str, v: Value) -> Op {
        Op::new(0, t, Process::Client(p), f, v)
    }

    fn nemesis(f: &str, v: Value) -> Op {
        Op::new(0, OpType::Info, Process::nemesis(), f, v)
    }

    fn build(ops: Vec<Op>) -> History {
        let lines = (1..=ops.len()).collect();
        History::new("t.jsonl", Format::JsonLines, ops, lines).unwrap()
    }

    fn outcome(valid: Validity, failure: Option<Failure>) -> Outcome {
        Outcome {
            valid,
            cause: None,
            model: "cas-register".to_string(),
            semantics: Semantics::for_format(Format::JsonLines),
            ops: 0,
            crashed_ops: 0,
            partitions: 1,
            configurations: 42,
            failure,
        }
    }

    fn failure(h: &History, op: usize, concurrent: &[usize], order: Vec<usize>) -> Failure {
        Failure {
            key: None,
            op: OpSummary::from_history(h, op),
            concurrent: concurrent
                .iter()
                .map(|&c| OpSummary::from_history(h, c))
                .collect(),
            prefixes: vec![Prefix {
                order,
                elided: 0,
                state: "2".to_string(),
                reason: "read 1 but the register holds 2".to_string(),
            }],
        }
    }

    /// p3 reads 1 after p2's write of 2 completed; p4 crashes writing a hostile string.
    fn small() -> History {
        use OpType::*;
        build(vec![
            op(Invoke, 0, "write", json!(1)),
            op(Invoke, 1, "read", Value::Null),
            op(Ok, 0, "write", json!(1)),
            nemesis("start", json!("partition")),
            op(Ok, 1, "read", json!(1)),
            op(Invoke, 2, "write", json!(2)),
            op(Ok, 2, "write", json!(2)),
            op(Invoke, 3, "read", Value::Null),
            op(
                Invoke,
                4,
                "write",
                json!("<script>alert('x')</script> & \"q\""),
            ),
            op(Ok, 3, "read", json!(1)),
            op(
                Info,
                4,
                "write",
                json!("<script>alert('x')</script> & \"q\""),
            ),
            op(Invoke, 10, "read", Value::Null),
        ])
    }

    fn small_page() -> String {
        let h = small();
        let f = failure(&h, 7, &[8, 11], vec![0, 1, 5]);
        html(&h, &outcome(Validity::Invalid, Some(f)), "small <test>")
    }

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    /// The drawn bars: (invocation index, class attribute).
    fn bars(page: &str) -> Vec<(usize, String)> {
        page.split("<rect id=\"op-")
            .skip(1)
            .filter_map(|s| {
                let (id, rest) = s.split_once("\" class=\"")?;
                Some((id.parse().ok()?, rest.split('"').next()?.to_string()))
            })
            .collect()
    }

    fn failing(page: &str) -> Vec<usize> {
        let b = bars(page).into_iter();
        b.filter(|(_, c)| c.contains("failing"))
            .map(|(i, _)| i)
            .collect()
    }

    fn svg_part(page: &str) -> &str {
        let start = page.find("<svg").expect("an svg");
        let end = page.find("</svg>").expect("a closed svg") + "</svg>".len();
        &page[start..end]
    }

    #[test]
    fn the_xml_checker_catches_mistakes() {
        assert!(crate::xml_check::well_formed("<svg><g><rect/></g></svg>").is_ok());
        assert!(crate::xml_check::well_formed("<svg><g></svg>").is_err());
        assert!(crate::xml_check::well_formed("<svg><text>a < b</text></svg>").is_err());
        assert!(crate::xml_check::well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(crate::xml_check::well_formed("<svg x=\"1></svg>").is_err());
    }

    #[test]
    fn draws_one_timeline_with_one_bar_per_op() {
        let page = small_page();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.trim_end().ends_with("</html>"));
        assert_eq!(count(&page, "<svg"), 1);
        // Invocations 0, 1, 5, 7, 8 and 11; the nemesis event is a marker, not a bar.
        assert_eq!(count(&page, "class=\"op "), 6);
        assert_eq!(count(&page, "class=\"event\""), 1);
        assert!(page.contains("NOT linearizable"));
        assert!(page.contains("cas-register"));
        assert!(page.contains("<pre class=\"explain\">"));
    }

    #[test]
    fn marks_failing_concurrent_and_open_ops() {
        let page = small_page();
        assert!(
            page.contains("id=\"op-7\" class=\"op ok failing\""),
            "{page}"
        );
        assert!(page.contains("id=\"op-8\" class=\"op info concurrent\""));
        assert!(page.contains("id=\"op-11\" class=\"op pending concurrent\""));
        assert!(page.contains("id=\"op-0\" class=\"op ok\""));
        assert_eq!(failing(&page), [7]);
        assert_eq!(bars(&page).len(), count(&page, "class=\"op "));
        // The prefix's three ops are numbered 1..3 on the timeline.
        assert_eq!(count(&page, "<g class=\"lpn\">"), 3);
        assert!(page.contains("read 1 but the register holds 2"));
    }

    #[test]
    fn numbers_count_the_elided_ops_of_a_prefix() {
        let h = small();
        let mut f = failure(&h, 7, &[8, 11], vec![1, 5]);
        f.prefixes[0].elided = 1;
        let page = html(&h, &outcome(Validity::Invalid, Some(f)), "elided");
        assert!(page.contains("3 ops &#8594; state"));
        assert!(page.contains("… 1 earlier ops"));
        assert!(page.contains("<i>3</i> p2 write 2"));
        assert!(page.contains(">3</text></g>") && !page.contains(">1</text></g>"));
    }

    #[test]
    fn rows_are_clients_by_number_then_named() {
        let page = small_page();
        let rows: Vec<&str> = page
            .split("<div class=\"rowlbl")
            .skip(1)
            .filter(|s| !s.starts_with('s'))
            .filter_map(|s| s.split('>').nth(1)?.split('<').next())
            .collect();
        assert_eq!(rows, ["p0", "p1", "p2", "p3", "p4", "p10", "nemesis"]);
    }

    #[test]
    fn escapes_everything_from_the_history() {
        let page = small_page();
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<test>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)"));
        assert!(page.contains("small &lt;test&gt;"));
        assert_eq!(count(&page, "<script>"), 1, "only the page's own script");
    }

    #[test]
    fn svg_is_well_formed() {
        crate::xml_check::well_formed(svg_part(&small_page())).unwrap();
        let h = small();
        crate::xml_check::well_formed(svg_part(&html(&h, &outcome(Validity::Valid, None), "v")))
            .unwrap();
    }

    fn long(n: u64) -> History {
        let mut ops = Vec::new();
        for i in 0..n {
            ops.push(op(OpType::Invoke, i % 5, "write", json!(i)));
            ops.push(op(OpType::Ok, i % 5, "write", json!(i)));
        }
        build(ops)
    }

    #[test]
    fn long_histories_are_windowed_around_the_failing_op() {
        let h = long(10_000);
        let f = failure(&h, 12_000, &[], (0..6_000).map(|i| 2 * i).collect());
        let page = html(&h, &outcome(Validity::Invalid, Some(f)), "long");
        let bars = count(&page, "class=\"op ");
        assert!(bars <= MAX_CLIENT_OPS && bars > 1_000, "{bars} bars");
        assert!(page.contains("Windowed:"));
        assert!(page.contains("drawing 2000 of 10000 client operations"));
        assert!(page.contains("id=\"op-12000\" class=\"op ok failing\""));
        assert!(!page.contains("id=\"op-0\""));
        assert_eq!(count(&page, "<g class=\"lpn\">"), NUMBERED_POINTS);
        assert!(page.len() < 2_000_000, "{} bytes", page.len());
        crate::xml_check::well_formed(svg_part(&page)).unwrap();
    }

    #[test]
    fn long_histories_without_failure_show_the_first_ops() {
        let page = html(&long(10_000), &outcome(Validity::Valid, None), "long");
        assert_eq!(count(&page, "class=\"op "), MAX_CLIENT_OPS);
        assert!(page.contains("id=\"op-0\""));
        assert!(page.contains("the first ones"));
        let short = html(&long(100), &outcome(Validity::Valid, None), "short");
        assert!(!short.contains("Windowed:"));
    }

    #[test]
    fn keyed_failure_draws_only_its_key() {
        use OpType::*;
        let h = build(vec![
            op(Invoke, 0, "write", json!(["a", 1])),
            op(Invoke, 1, "write", json!(["b", 1])),
            op(Ok, 0, "write", json!(["a", 1])),
            op(Ok, 1, "write", json!(["b", 1])),
            nemesis("kill", json!(["n1"])),
            op(Invoke, 2, "read", json!(["a", null])),
            op(Ok, 2, "read", json!(["a", 2])),
            op(Invoke, 3, "read", json!(["b", null])),
            op(Ok, 3, "read", json!(["b", 1])),
        ]);
        let mut f = failure(&h, 5, &[], vec![0]);
        f.key = Some(json!("a"));
        let page = html(&h, &outcome(Validity::Invalid, Some(f)), "keyed");
        let drawn: Vec<usize> = bars(&page).into_iter().map(|(i, _)| i).collect();
        assert_eq!(drawn, [0, 5]);
        assert_eq!(count(&page, "class=\"event\""), 1, "nemesis events stay");
        // Labels drop the key: the read shows its value only.
        assert!(page.contains(">✗ read → 2<"), "{page}");
        crate::xml_check::well_formed(svg_part(&page)).unwrap();
    }

    #[test]
    fn empty_history_and_unknown_verdicts_render() {
        let h = build(vec![]);
        let mut o = outcome(Validity::Unknown, None);
        o.cause = Some("timeout".to_string());
        let page = html(&h, &o, "");
        assert_eq!(count(&page, "<svg"), 1);
        assert!(page.contains("unknown (timeout)"));
        assert!(page.contains("no operations to draw"));
        crate::xml_check::well_formed(svg_part(&page)).unwrap();
    }

    #[test]
    fn an_outcome_of_another_history_does_not_panic() {
        let h = small();
        let mut f = failure(&h, 7, &[8], vec![0, 1, 5]);
        f.prefixes[0].order.push(999);
        let page = html(&h, &outcome(Validity::Invalid, Some(f)), "mismatch");
        assert!(page.contains("does not have"));
        assert!(failing(&page).is_empty());
    }

    /// Arbitrary histories (whatever `History::new` accepts) with arbitrary failure indices
    /// render without panicking into a well-formed timeline.
    #[test]
    fn random_histories_never_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let types = [OpType::Invoke, OpType::Ok, OpType::Fail, OpType::Info];
        for _ in 0..300 {
            let len = next(40) as usize;
            let ops: Vec<Op> = (0..len)
                .map(|_| {
                    let t = types[next(4) as usize];
                    let v = match next(3) {
                        0 => json!(next(3)),
                        1 => json!(["k", "\u{1}<&>"]),
                        _ => Value::Null,
                    };
                    match next(6) {
                        0 => nemesis(["start", "stop", "kill"][next(3) as usize], v),
                        p => op(t, p, "f", v),
                    }
                })
                .collect();
            let lines = (1..=ops.len()).collect();
            let Ok(h) = History::new("r", Format::JsonLines, ops, lines) else {
                continue;
            };
            let invokes: Vec<usize> = (0..h.len())
                .filter(|&i| h.ops[i].op_type == OpType::Invoke)
                .collect();
            let failure = invokes.first().map(|&i| {
                let mut f = failure(&h, i, &invokes, invokes.clone());
                f.key = [None, Some(json!("k"))][next(2) as usize].clone();
                f
            });
            let page = html(&h, &outcome(Validity::Invalid, failure), "r");
            crate::xml_check::well_formed(svg_part(&page)).unwrap();
        }
    }
}
