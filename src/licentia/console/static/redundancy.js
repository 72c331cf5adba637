// Redundancy page: shows this server's relationship (none, backup pair, triad) from
// GET /api/v1/admin/relationship, polled every second so a failover shows without a reload, and
// runs the backup pair's actions (sync, swap, replace, remove) and the triad's removal through the
// relationship admin API. The setup wizard is in redundancy-wizard.js, the pictures in
// redundancy-diagram.js.
(() => {
  "use strict";

  const POLL_MS = 1000;
  const POLL_TIMEOUT_MS = 3000; // a slower answer is dropped, so the next poll is sent (never a frozen page)
  const NARROW_PX = 560;
  // From redundancy-diagram.js, set when the page starts (the page's scripts may load in any order).
  let pairIcon, PAIR_STATES, triad, memberState, lagText;

  const cell = (label, content, className) => {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (className) td.className = className;
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    return td;
  };

  const span = (text, className) => {
    const node = document.createElement("span");
    node.className = className;
    node.textContent = text;
    return node;
  };
  const badge = (text, kind) => span(text, `badge badge-${kind}`);

  const nameCell = (label, name, isMe) => {
    const td = cell(label, "");
    const strong = document.createElement("strong");
    strong.textContent = name;
    td.append(strong);
    if (isMe) td.append(" ", span("this server", "tag tag-quiet"));
    return td;
  };

  // "12:03:04 (5 s ago)" in the browser's time zone.
  const ago = (seconds) => {
    if (!seconds) return "never";
    const when = new Date(seconds * 1000);
    const age = Math.max(0, Date.now() / 1000 - seconds);
    const relative = age < 90 ? `${Math.round(age)} s ago` : age < 5400 ? `${Math.round(age / 60)} min ago`
      : `${Math.round(age / 3600)} h ago`;
    return `${when.toLocaleTimeString()} (${relative})`;
  };

  // A row's status icon, as the seed's table has one per server: the connection and synchronization
  // between the servers as this server sees them (the legend below the table says what each means).
  const statusCell = (state) => {
    const td = cell("Status", "", "pair-status");
    td.dataset.state = state;
    td.append(pairIcon(state), " ", span(PAIR_STATES[state].text, "pair-status-text"));
    return td;
  };

  const count = (value, unit) => (value === null || value === undefined ? "not known yet" : `${value} ${unit}`);
  const pending = (side) => side ? `${count(side.changes, "changes")}, ${count(side.usage_rows, "usage rows")}` : "—";

  class RelationshipView {
    constructor(root) {
      this.root = root;
      this.url = root.dataset.api;
      this.sections = {
        none: root.querySelector("#rel-none"),
        backup: root.querySelector("#rel-backup"),
        triad: root.querySelector("#rel-triad"),
      };
      this.announcer = root.querySelector("#rel-announce");
      this.offline = root.querySelector("#rel-offline");
      this.status = JSON.parse(root.dataset.status || '{"type": null}');
      this.narrow = null;
      this.polling = false;
      this.sent = 0;
      this.shown = 0;
    }

    field(section, name) {
      return this.sections[section].querySelector(`[data-field="${name}"]`);
    }

    // Tell screen readers what changed (the pair's state, the active member), not every second's redraw.
    announce(previous, status) {
      let text = "";
      if ((previous.type ?? null) !== (status.type ?? null)) {
        text = status.type === "backup" ? `Backup relationship ${status.name} set up.`
          : status.type === "triad" ? `Triad ${status.name} set up.` : "This server now works alone.";
      } else if (status.type === "backup" && previous.state !== status.state) {
        text = `Backup pair status: ${PAIR_STATES[status.state]?.text ?? status.state}.`;
      } else if (status.type === "triad" && previous.active !== status.active) {
        text = status.active ? `Triad: ${status.active} is now active.` : "Triad: no member is active.";
      }
      if (text) this.announcer.textContent = text;
    }

    render(status) {
      const previous = this.status;
      this.status = status;
      const kind = status.type === "backup" || status.type === "triad" ? status.type : "none";
      for (const [name, section] of Object.entries(this.sections)) {
        if (section) section.hidden = name !== kind;
      }
      this.root.dataset.relationship = kind;
      if (kind === "backup") this.renderBackup(status);
      if (kind === "triad") this.renderTriad(status);
      this.announce(previous, status);
    }

    renderBackup(status) {
      this.field("backup", "name").textContent = status.name;
      const state = PAIR_STATES[status.state] ? status.state : "not_connected_not_synchronized";
      const holder = this.field("backup", "state");
      holder.dataset.state = state;
      holder.replaceChildren(pairIcon(state));
      const text = document.createElement("span");
      text.className = "pair-state-text";
      text.textContent = PAIR_STATES[state].text;
      holder.append(text);

      const rows = status.members.map((member) => {
        const tr = document.createElement("tr");
        tr.dataset.member = member.name;
        tr.dataset.online = String(Boolean(member.online));
        tr.append(
          nameCell("Server", member.name, member.me),
          cell("Role", member.role === "main" ? "Main" : "Backup"),
          cell("API URL", member.api_url, "url"),
          cell("Online", member.online ? badge("● Online", "ok") : badge("✕ Offline", "bad")),
          statusCell(state),
        );
        return tr;
      });
      this.field("backup", "members").replaceChildren(...rows);
      this.field("backup", "last-sync").textContent = ago(status.last_sync_at);
      this.field("backup", "interval").textContent = `every ${status.interval_s} s`;
      this.field("backup", "to-partner").textContent = pending(status.pending?.to_partner);
      this.field("backup", "from-partner").textContent = pending(status.pending?.from_partner);
      this.field("backup", "last-error").textContent = status.last_error || "none";
      this.field("backup", "partner").textContent = status.partner;
      for (const node of this.sections.backup.querySelectorAll("[data-only-role]")) {
        node.hidden = node.dataset.onlyRole !== status.my_role;
      }
      for (const node of this.sections.backup.querySelectorAll('[data-field="main-name"]')) {
        const main = status.members.find((m) => m.role === "main");
        node.textContent = main ? `${main.name} (${main.api_url})` : "the main";
      }
    }

    renderTriad(status) {
      this.field("triad", "name").textContent = status.name;
      const active = status.members.find((m) => m.active);
      this.field("triad", "active").textContent = active
        ? `${active.name} (${active.role})` : "nobody: fewer than two members reach each other";
      this.field("triad", "active").dataset.active = active?.name ?? "";
      this.field("triad", "quorum").textContent = status.has_quorum ? "yes" : "no (this server reaches no other member)";
      this.field("triad", "epoch").textContent = String(status.epoch);
      const primary = status.members.find((m) => m.role === "primary");
      this.field("triad", "primary").textContent = primary ? primary.name : "the primary";

      const box = this.field("triad", "diagram");
      this.narrow = box.clientWidth > 0 && box.clientWidth < NARROW_PX;
      box.replaceChildren(triad(status, this.narrow));

      const rows = status.members.map((member) => {
        const tr = document.createElement("tr");
        tr.dataset.member = member.name;
        if (member.active) tr.className = "is-active";
        const state = memberState(member);
        const kind = member.active ? "ok" : member.reachable ? "info" : "bad";
        tr.append(
          nameCell("Member", member.name, member.name === status.me),
          cell("Role", member.role[0].toUpperCase() + member.role.slice(1)),
          cell("State", badge(member.active ? `★ ${state}` : state, kind)),
          cell("Reachable", member.reachable ? "Yes" : "No"),
          cell("Replication lag", lagText(member).replace(/^Lag: /, "") + (member.raft_leader ? " (Raft leader)" : "")),
          cell("API URL", member.api_url, "url"),
        );
        return tr;
      });
      this.field("triad", "members").replaceChildren(...rows);
    }

    // Focus the heading of the section shown now (after a change made the old one disappear).
    focusHeading() {
      const kind = this.root.dataset.relationship;
      this.sections[kind]?.querySelector("h2[tabindex='-1']")?.focus();
    }

    // Fetch and show the status now; an answer older than one already shown is dropped.
    async load() {
      const sequence = ++this.sent;
      try {
        const status = await Console.api("GET", this.url, undefined, { timeoutMs: POLL_TIMEOUT_MS });
        if (sequence < this.shown) return;
        this.shown = sequence;
        this.offline.hidden = true;
        this.render(status);
      } catch (error) {
        if (error.status === 401) {
          window.location.reload();
          return;
        }
        this.offline.hidden = false;
      }
    }

    // Show a status an action answered with; polls sent before it no longer count.
    show(status) {
      this.shown = ++this.sent;
      this.render(status);
    }

    async poll() {
      if (this.polling || document.hidden) return;
      this.polling = true;
      try {
        await this.load();
      } finally {
        this.polling = false;
      }
    }

    start() {
      for (const item of this.root.querySelectorAll("[data-legend]")) {
        item.querySelector("[data-icon]").replaceChildren(pairIcon(item.dataset.legend));
      }
      this.render(this.status);
      window.setInterval(() => this.poll(), POLL_MS);
      // Redraw the diagram in the other layout when the window crosses the narrow width.
      window.addEventListener("resize", () => {
        const box = this.sections.triad && this.field("triad", "diagram");
        if (this.status.type === "triad" && box && (box.clientWidth < NARROW_PX) !== this.narrow) {
          this.renderTriad(this.status);
        }
      });
    }
  }

  // -- events --------------------------------------------------------------------------------

  // The timeline under the relationship: GET .../relationship/events, a page of EVENTS_PAGE more each time
  // the administrator asks for older ones (the API answers at most 100 at a time), refreshed every 2 s.
  const EVENTS_PAGE = 10;
  const EVENTS_MAX = 100;
  const EVENTS_MS = 2000;
  const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString();

  class EventsView {
    constructor(section, relationship) {
      this.section = section;
      this.relationship = relationship;
      this.limit = EVENTS_PAGE;
      this.busy = false;
      this.list = section.querySelector('[data-field="events"]');
      this.outages = section.querySelector('[data-field="outages"]');
      this.older = section.querySelector('[data-field="older"]');
      this.older.addEventListener("click", () => {
        this.limit = Math.min(EVENTS_MAX, this.limit + EVENTS_PAGE);
        this.load();
      });
    }

    render(answer) {
      const items = answer.events.map((event) => {
        const li = document.createElement("li");
        li.dataset.kind = event.kind;
        const time = document.createElement("time");
        time.dateTime = new Date(event.at * 1000).toISOString();
        time.textContent = clock(event.at);
        li.append(time, " ", span(event.text, "event-text"));
        return li;
      });
      if (!items.length) {
        const empty = document.createElement("li");
        empty.className = "muted";
        empty.textContent = "No events yet.";
        items.push(empty);
      }
      this.list.replaceChildren(...items);
      const outages = Object.entries(answer.unreachable_since ?? {});
      this.outages.hidden = outages.length === 0;
      this.outages.textContent = outages.map(([name, since]) => `${name} unreachable since ${clock(since)}.`).join(" ");
      this.older.hidden = answer.next === null || this.limit >= EVENTS_MAX;
    }

    async load() {
      if (this.busy || document.hidden) return;
      this.section.hidden = !this.relationship.status.type;
      if (this.section.hidden) return;
      this.busy = true;
      try {
        const url = `${this.section.dataset.api}?limit=${this.limit}`;
        this.render(await Console.api("GET", url, undefined, { timeoutMs: POLL_TIMEOUT_MS }));
      } catch {
        // The status above says when the server does not answer; the list keeps what it showed.
      } finally {
        this.busy = false;
      }
    }

    start() {
      this.load();
      window.setInterval(() => this.load(), EVENTS_MS);
    }
  }

  // -- actions ---------------------------------------------------------------------------------

  const pageMessage = () => document.getElementById("page-message");

  // An in-page "are you sure" box: the opener shows it and moves focus to its heading; Cancel and
  // Esc hide it again and return focus to the opener.
  const confirmBox = (opener, box) => {
    const close = () => {
      box.hidden = true;
      opener.setAttribute("aria-expanded", "false");
      opener.focus();
    };
    opener.addEventListener("click", () => {
      const opening = box.hidden;
      box.hidden = !opening;
      opener.setAttribute("aria-expanded", String(opening));
      if (opening) box.querySelector("h3, [tabindex='-1']")?.focus();
    });
    box.querySelector("[data-cancel]")?.addEventListener("click", close);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    return close;
  };

  const backupActions = (page, api) => {
    const panel = document.getElementById("backup-setup");
    if (!panel) return;
    const button = (id) => panel.querySelector(`#${id}`);

    const message = panel.querySelector(":scope > .form-message");

    // A button that POSTs to the API, shows the pair's status it answers with and says what happened.
    const action = (id, path, outcome) => button(id)?.addEventListener("click", async (event) => {
      Console.clear(panel);
      await Console.busy(event.currentTarget, async () => {
        try {
          const answer = await Console.api("POST", `${api}/${path}`);
          page.show(answer);
          Console.say(message, ...outcome(answer));
        } catch (error) {
          Console.fail(panel, error);
        }
      });
    });
    action("sync-now", "sync", (answer) => answer.reached
      ? [`Synchronized with ${answer.partner}.`, "ok"]
      : [`${answer.partner} could not be reached; the servers synchronize as soon as it answers again.`, "error"]);
    action("swap-roles", "swap", (answer) => [`Roles swapped: this server is now the ${answer.my_role}, ${
      answer.partner} the ${answer.my_role === "main" ? "backup" : "main"}.`, "ok"]);

    const replaceForm = panel.querySelector("#replace-form");
    const openReplace = button("open-replace");
    if (replaceForm && openReplace) {
      const closeReplace = confirmBox(openReplace, replaceForm);
      replaceForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        const form = event.currentTarget;
        Console.clear(form);
        const body = {
          backup: { name: form.elements.name.value.trim(), api_url: form.elements.api_url.value.trim() },
          username: form.elements.username.value,
          password: form.elements.password.value,
        };
        await Console.busy(event.submitter, async () => {
          try {
            const answer = await Console.api("POST", `${api}/backup/replace`, body);
            form.reset();
            form.elements.password.value = "";
            closeReplace();
            const left = answer.replaced_partner_left ? ""
              : ` ${answer.replaced} could not be reached: remove the relationship on it too.`;
            Console.say(message, `The backup is now ${answer.backup} (it replaced ${
              answer.replaced}).${left}`, left ? "error" : "ok");
            await page.load();
          } catch (error) {
            form.elements.password.value = "";
            Console.fail(form, error);
          }
        });
      });
    }

    removal(page, api, panel, "open-remove", "remove-confirm", (answer) => answer.partner_left
      ? `The backup relationship ${answer.dissolved} was removed; both servers work alone.`
      : `The backup relationship ${answer.dissolved} was removed here. ${answer.partner} could not be reached: ` +
        "it still counts itself in the pair, so remove the relationship on it too.");
  };

  // Remove a relationship after the confirm step; the outcome goes to the page's message line, since
  // the section it was started from disappears once this server works alone.
  const removal = (page, api, scope, openerId, boxId, outcome) => {
    const opener = scope.querySelector(`#${openerId}`);
    const box = scope.querySelector(`#${boxId}`);
    if (!opener || !box) return;
    const close = confirmBox(opener, box);
    box.querySelector("[data-confirm-remove]").addEventListener("click", async (event) => {
      Console.clear(box);
      await Console.busy(event.currentTarget, async () => {
        let answer;
        try {
          answer = await Console.api("POST", `${api}/dissolve`);
        } catch (error) {
          Console.fail(box, error);
          return;
        }
        close();
        // This server works alone from now on: show it at once, whatever polls still in flight answer.
        page.show({ type: null });
        Console.pollStatus?.();
        Console.say(pageMessage(), outcome(answer), answer.partner_left === false ? "error" : "ok");
        await page.load();
        page.focusHeading();
      });
    });
  };

  Console.pages.redundancy = (root) => {
    ({ pairIcon, PAIR_STATES, triad, memberState, lagText } = window.RedundancyDiagram);
    const element = root.getElementById("redundancy");
    const page = new RelationshipView(element);
    page.start();
    const events = root.getElementById("rel-events");
    if (events) new EventsView(events, page).start();
    const api = element.dataset.api;
    backupActions(page, api);
    const triadPanel = document.getElementById("triad-options");
    if (triadPanel) {
      removal(page, api, triadPanel, "open-dissolve", "dissolve-confirm", (answer) =>
        `Triad ${answer.dissolved} dissolved: each member works alone again under its own name; each license went ` +
        "back to the member that brought it (licenses added since stay with the former primary).");
    }
    window.RedundancyWizard?.init(element, {
      api,
      onDone: () => page.load(),
      onClose: () => page.focusHeading(),
    });
  };
})();
