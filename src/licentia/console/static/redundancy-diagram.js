// Redundancy page: the pictures. RedundancyDiagram.triad(status, narrow) draws a triad's three members,
// the links between them and who is active, from GET /api/v1/admin/relationship of this server;
// RedundancyDiagram.pairIcon(state) draws one of the four backup-pair status icons. Every picture
// says in text what it shows (active, unreachable, lag), so nothing depends on colour alone.
(() => {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const ROLES = ["primary", "secondary", "tertiary"];

  const el = (name, attributes = {}, text) => {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // -- backup pair icons ---------------------------------------------------------------------

  // Two servers joined by a line (solid: connected; broken with a slash: not connected) and a badge
  // under the line (a tick: synchronized; "!": not synchronized). The four states are the four mixes.
  const PAIR_STATES = {
    connected_synchronized: { connected: true, synchronized: true, text: "Connected and synchronized" },
    connected_not_synchronized: { connected: true, synchronized: false, text: "Connected, not synchronized" },
    not_connected_synchronized: { connected: false, synchronized: true, text: "Not connected, synchronized" },
    not_connected_not_synchronized: { connected: false, synchronized: false, text: "Not connected, not synchronized" },
  };

  const pairIcon = (state) => {
    const meaning = PAIR_STATES[state] ?? PAIR_STATES.not_connected_not_synchronized;
    const svg = el("svg", {
      viewBox: "0 0 44 30", width: 44, height: 30, class: `pair-icon pair-icon-${state}`,
      "aria-hidden": "true", focusable: "false", "data-state": state,
    });
    for (const x of [1, 33]) {
      svg.append(el("rect", { x, y: 2, width: 10, height: 16, rx: 2, class: "pair-icon-server" }));
      svg.append(el("line", { x1: x + 2, y1: 7, x2: x + 8, y2: 7, class: "pair-icon-slot" }));
      svg.append(el("line", { x1: x + 2, y1: 11, x2: x + 8, y2: 11, class: "pair-icon-slot" }));
    }
    if (meaning.connected) {
      svg.append(el("line", { x1: 11, y1: 10, x2: 33, y2: 10, class: "pair-icon-link" }));
    } else {
      svg.append(el("line", { x1: 11, y1: 10, x2: 18, y2: 10, class: "pair-icon-link is-broken" }));
      svg.append(el("line", { x1: 26, y1: 10, x2: 33, y2: 10, class: "pair-icon-link is-broken" }));
      svg.append(el("line", { x1: 20, y1: 15, x2: 24, y2: 5, class: "pair-icon-cut" }));
    }
    const badge = el("g", { class: meaning.synchronized ? "pair-icon-sync" : "pair-icon-unsync" });
    badge.append(el("circle", { cx: 22, cy: 22.5, r: 6.5 }));
    if (meaning.synchronized) {
      badge.append(el("path", { d: "M18.8 22.6 l2.2 2.3 l4.2 -4.6", class: "pair-icon-mark" }));
    } else {
      badge.append(el("line", { x1: 22, y1: 18.6, x2: 22, y2: 23.4, class: "pair-icon-mark" }));
      badge.append(el("circle", { cx: 22, cy: 26.1, r: 0.9, class: "pair-icon-dot" }));
    }
    svg.append(badge);
    return svg;
  };

  // -- triad diagram -------------------------------------------------------------------------

  // Node boxes (x, y of the top-left corner) for a wide and a narrow (stacked) layout.
  const LAYOUTS = {
    wide: { width: 720, height: 372, box: { w: 230, h: 124 },
      at: { primary: [16, 16], secondary: [474, 16], tertiary: [245, 236] } },
    narrow: { width: 360, height: 560, box: { w: 250, h: 124 },
      at: { primary: [10, 8], secondary: [10, 218], tertiary: [10, 428] } },
  };

  // What a member is doing, in words (shown in its box and in the table).
  const memberState = (member) => {
    if (member.active) return "Active";
    if (!member.reachable) return "Unreachable";
    return member.role === "tertiary" ? "Never serves" : "Standby";
  };

  // Plain-language explanations, shown as tooltips where these words appear.
  const TERMS = {
    lag: "Changes the triad has agreed on that this member has not applied yet, as it last reported. "
      + "A member that is down stops applying them, so its lag keeps growing until it is back and catches up.",
    raftLeader: "The member whose copy of the triad's shared log (etcd) currently coordinates the others. "
      + "It need not be the member that serves clients.",
  };

  const lagText = (member) =>
    member.log_behind === null || member.log_behind === undefined
      ? "Lag: not known here"
      : `Lag: ${member.log_behind} ${member.log_behind === 1 ? "entry" : "entries"}`;

  // A link as this server sees it: "up"/"down" when it is one of the two ends, else "unknown".
  const linkState = (a, b, me) => {
    if (a.name !== me && b.name !== me) return "unknown";
    const other = a.name === me ? b : a;
    return other.reachable ? "up" : "down";
  };
  const LINK_TEXT = { up: "connected", down: "no connection", unknown: "not seen from here" };

  const center = (layout, role) => {
    const [x, y] = layout.at[role];
    return [x + layout.box.w / 2, y + layout.box.h / 2];
  };

  // The path of a link, its label's position and anchor. In the narrow layout primary–tertiary arcs
  // round the right of the middle box.
  const linkGeometry = (layout, narrow, a, b) => {
    const [x1, y1] = center(layout, a);
    const [x2, y2] = center(layout, b);
    if (narrow && a === "primary" && b === "tertiary") {
      const right = layout.at.primary[0] + layout.box.w;
      const top = [right, y1];
      const bottom = [right, y2];
      const bend = layout.width - 6;
      return {
        d: `M${top[0]} ${top[1]} C${bend} ${top[1]} ${bend} ${bottom[1]} ${bottom[0]} ${bottom[1]}`,
        label: [bend - 4, (y1 + y2) / 2], anchor: "end", vertical: true,
      };
    }
    const label = narrow ? [x1 + 10, (y1 + y2) / 2 + 4] : [(x1 + x2) / 2, (y1 + y2) / 2 - 8];
    return { d: `M${x1} ${y1} L${x2} ${y2}`, label, anchor: narrow ? "start" : "middle", vertical: false };
  };

  const drawLink = (svg, layout, narrow, a, b, state) => {
    const geometry = linkGeometry(layout, narrow, a.role, b.role);
    const group = el("g", { class: `triad-link is-${state}`, "data-link": `${a.name}-${b.name}`, "data-state": state });
    group.append(el("path", { d: geometry.d }));
    const [lx, ly] = geometry.label;
    const text = el("text", { x: lx, y: ly, "text-anchor": geometry.anchor, class: "triad-link-label" },
      `${state === "down" ? "✕ " : ""}${LINK_TEXT[state]}`);
    if (geometry.vertical) {
      text.setAttribute("transform", `rotate(-90 ${lx} ${ly})`);
      text.setAttribute("text-anchor", "middle");
    }
    group.append(text);
    svg.append(group);
  };

  const drawMember = (svg, layout, member, me) => {
    const [x, y] = layout.at[member.role];
    const { w, h } = layout.box;
    const state = memberState(member);
    const classes = ["triad-node", `is-${state.toLowerCase().replace(/\s+/g, "-")}`];
    if (member.name === me) classes.push("is-me");
    const group = el("g", { class: classes.join(" "), "data-member": member.name, "data-role": member.role,
      "data-active": String(Boolean(member.active)), "data-reachable": String(Boolean(member.reachable)) });
    group.append(el("rect", { x, y, width: w, height: h, rx: 10, class: "triad-node-box" }));
    if (member.active) {
      group.append(el("rect", { x, y, width: w, height: 26, rx: 10, class: "triad-node-banner" }));
      group.append(el("rect", { x, y: y + 16, width: w, height: 10, class: "triad-node-banner" }));
      group.append(el("text", { x: x + w / 2, y: y + 18, "text-anchor": "middle", class: "triad-node-banner-text" },
        "★ ACTIVE: serving clients"));
    } else {
      group.append(el("text", { x: x + 14, y: y + 19, class: "triad-node-role" },
        member.role.toUpperCase() + (member.name === me ? " · this server" : "")));
    }
    // One fact a line, so none runs out of the box; the terms a person may not know explain themselves.
    const lines = [
      [member.name, "triad-node-name", ""],
      [member.active ? `${member.role}${member.name === me ? " · this server" : ""}` : state, "triad-node-state", ""],
      [lagText(member), "triad-node-detail", TERMS.lag],
      ...(member.raft_leader ? [["Raft leader", "triad-node-detail", TERMS.raftLeader]] : []),
    ];
    lines.forEach(([line, cls, help], index) => {
      const text = el("text", { x: x + 14, y: y + 48 + index * 21, class: cls }, line);
      if (cls === "triad-node-name") text.setAttribute("data-field", "name");
      if (help) {
        text.dataset.help = help;
        text.append(el("title", {}, help));
      }
      group.append(text);
    });
    if (!member.reachable) {
      group.append(el("text", { x: x + w - 14, y: y + 50, "text-anchor": "end", class: "triad-node-down" }, "✕"));
    }
    svg.append(group);
  };

  // A sentence per member and per link, for the picture's text alternative.
  const describe = (status) => {
    const members = status.members.map((m) =>
      `${m.name} (${m.role}${m.name === status.me ? ", this server" : ""}): ${memberState(m).toLowerCase()}, ` +
      `${m.reachable ? "reachable" : "not reachable"} from this server, ${lagText(m).toLowerCase()}.`);
    return `${members.join(" ")} ${status.active ? `Active: ${status.active}.` : "No member is active."}`;
  };

  const triad = (status, narrow = false) => {
    const layout = narrow ? LAYOUTS.narrow : LAYOUTS.wide;
    const svg = el("svg", {
      viewBox: `0 0 ${layout.width} ${layout.height}`, class: `triad-diagram${narrow ? " is-narrow" : ""}`,
      role: "img", "aria-labelledby": "triad-diagram-title triad-diagram-desc", "data-active": status.active ?? "",
    });
    svg.append(el("title", { id: "triad-diagram-title" }, `Triad ${status.name} as seen from ${status.me}`));
    svg.append(el("desc", { id: "triad-diagram-desc" }, describe(status)));
    const byRole = Object.fromEntries(status.members.map((m) => [m.role, m]));
    const present = ROLES.filter((role) => byRole[role]);
    for (let i = 0; i < present.length; i += 1) {
      for (let j = i + 1; j < present.length; j += 1) {
        const a = byRole[present[i]];
        const b = byRole[present[j]];
        drawLink(svg, layout, narrow, a, b, linkState(a, b, status.me));
      }
    }
    for (const role of present) drawMember(svg, layout, byRole[role], status.me);
    return svg;
  };

  window.RedundancyDiagram = { triad, pairIcon, PAIR_STATES, memberState, lagText, TERMS };
})();
