// Redundancy page: the Redundancy Setup wizard, a modal dialog of six steps (type, servers, check,
// seed, summary, result). The check step calls the setup endpoint with check_only and shows, per
// server, whether it was reached and which access rule is missing where, exactly as the API says;
// Finish calls it for real. The administrator password lives in its input only: it is sent with the
// check and the setup, and cleared when the wizard closes.
(() => {
  "use strict";

  const STEPS = ["type", "servers", "check", "seed", "summary", "result"];
  const ROLES = ["primary", "secondary", "tertiary"];

  const make = (name, text, className) => {
    const node = document.createElement(name);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  };

  const trimUrl = (value) => value.trim().replace(/\/+$/, "");

  // Which server the API named in a "cannot be reached" / "cannot log in" refusal: it says "NAME (URL)".
  const namedIn = (message, servers) =>
    servers.findIndex((server) => message.includes(`${server.name} (${server.api_url}`));

  // Per server: reached and logged in, refused, or not checked; from the check's outcome. Members are
  // opened in order and the access rules are checked only once every one was reached.
  const connectivity = (servers, outcome) => {
    const error = outcome.error;
    if (!error) return servers.map(() => "ok");
    const busy = error.code === "relationship_exists" && error.message.startsWith("already in a relationship:");
    if (error.code === "access_check_failed" || busy) return servers.map(() => "ok");
    if (error.code === "member_unreachable" || error.code === "member_login_failed") {
      const failed = namedIn(error.message, servers);
      if (failed >= 0) {
        return servers.map((_, index) => (index < failed ? "ok" : index === failed ? error.code : "unchecked"));
      }
    }
    return servers.map(() => "unchecked");
  };

  const REACH_TEXT = {
    ok: ["✓", "Reached; administrator login accepted", "check-ok"],
    member_unreachable: ["✕", "Cannot be reached from this server", "check-bad"],
    member_login_failed: ["✕", "Reached, but the administrator login was refused", "check-bad"],
    unchecked: ["–", "Not checked", "check-unknown"],
  };

  // Servers on HTTPS whose certificate the administrator has not confirmed yet: the API names the
  // fingerprint each presents (nothing, no password, was sent to them). The administrator compares each
  // with the one on that server's This License Server page and ticks it; the next check pins them.
  const renderCertificates = (problems, confirmed) => {
    const nodes = [make("h4", "Certificates")];
    nodes.push(make("p", "These servers answer over HTTPS with their own certificates. Compare each fingerprint " +
      "with the one shown under Connection security on that server's This License Server page, tick it if it " +
      "matches, then check again. Do not tick one that differs: something else answers at that address.",
      "check-summary"));
    const list = make("ul", undefined, "check-list certificate-list");
    problems.forEach((problem, index) => {
      const item = make("li");
      item.dataset.server = problem.server;
      const input = make("input");
      Object.assign(input, { type: "checkbox", id: `wizard-cert-${index}` });
      input.checked = confirmed.get(problem.api_url) === problem.tls_fingerprint;
      input.addEventListener("change", () => {
        if (input.checked) confirmed.set(problem.api_url, problem.tls_fingerprint);
        else confirmed.delete(problem.api_url);
      });
      const label = make("label");
      label.htmlFor = input.id;
      label.append(make("strong", problem.server), ` (${problem.api_url}) presents `,
        make("code", problem.tls_fingerprint), " — it matches the fingerprint on its console");
      item.append(input, " ", label);
      list.append(item);
    });
    nodes.push(list);
    return nodes;
  };

  // The check's outcome: a line per server, then the missing access rules as the API lists them.
  const renderCheck = (servers, outcome, confirmed) => {
    const nodes = [];
    if (outcome.error?.code === "tls_fingerprint_needed") {
      nodes.push(...renderCertificates(outcome.error.problems, confirmed));
    }
    nodes.push(make("h4", "Connection"));
    const list = make("ul", undefined, "check-list");
    connectivity(servers, outcome).forEach((reach, index) => {
      const [mark, text, className] = REACH_TEXT[reach];
      const item = make("li", undefined, className);
      item.dataset.server = servers[index].name;
      item.dataset.reach = reach;
      item.append(make("span", mark, "check-mark"), " ");
      item.append(make("strong", servers[index].name), ` (${servers[index].api_url}): ${text}`);
      list.append(item);
    });
    nodes.push(list);
    const error = outcome.error;
    nodes.push(make("h4", "Access rules"));
    const rules = (error?.problems ?? []).filter((problem) => problem.must_allow !== undefined);
    if (!error) {
      nodes.push(make("p", "✓ Each server's access rules allow the others.", "check-ok check-summary"));
    } else if (rules.length) {
      nodes.push(make("p", "These servers do not allow the others yet. Add the missing rules on the This License " +
        "Server page of each server named (or through its admin API), then check again.", "check-bad check-summary"));
      const wrap = make("div", undefined, "table-wrap");
      const table = make("table", undefined, "data-table problems-table");
      const head = make("tr");
      for (const title of ["Server", "Must allow", "Decided by", "Fix"]) {
        const th = make("th", title);
        th.scope = "col";
        head.append(th);
      }
      table.append(make("thead"));
      table.tHead.append(head);
      const body = make("tbody");
      for (const problem of rules) {
        const row = make("tr");
        row.dataset.server = problem.server;
        row.dataset.mustAllow = problem.must_allow;
        const values = [["Server", problem.server], ["Must allow", problem.must_allow],
          ["Decided by", problem.decided_by ?? ""], ["Fix", problem.fix ?? ""]];
        for (const [label, value] of values) {
          const td = make("td", value);
          td.dataset.label = label;
          row.append(td);
        }
        if (problem.api_url) {
          // The page where the rule is added, on the server that needs it.
          const link = make("a", `This License Server page of ${problem.server}`);
          link.href = `${problem.api_url.replace(/\/+$/, "")}${Console.path}/this-server`;
          link.target = "_blank";
          link.rel = "noopener";
          row.lastElementChild.append(" ", link);
        }
        body.append(row);
      }
      table.append(body);
      wrap.append(table);
      nodes.push(wrap);
    } else {
      nodes.push(make("p", "Not checked: the servers must be reached first.", "check-unknown"));
    }
    if (error && !rules.length && error.code !== "tls_fingerprint_needed") {
      const message = make("p", error.message, "form-message is-error");
      message.setAttribute("role", "alert");
      nodes.push(message);
    }
    return nodes;
  };

  class Wizard {
    constructor(root, options) {
      this.root = root;
      this.api = options.api;
      this.onDone = options.onDone;
      this.onClose = options.onClose;
      this.dialog = document.getElementById("setup-wizard");
      this.form = this.dialog.querySelector("form");
      this.steps = Object.fromEntries(STEPS.map((step) => [step, this.dialog.querySelector(`[data-step="${step}"]`)]));
      this.message = this.dialog.querySelector("#wizard-message");
      this.buttons = Object.fromEntries(
        [...this.dialog.querySelectorAll("[data-action]")].map((button) => [button.dataset.action, button]));
      this.checkButton = this.dialog.querySelector("#wizard-check");
      this.passed = null; // the signature of the setup that last passed the check
      this.confirmed = new Map(); // api_url -> the certificate fingerprint the administrator confirmed
      this.checked = false;
      this.succeeded = false;
      this.busy = false;
      this.step = STEPS[0];
      this.opener = null;
    }

    get elements() {
      return this.form.elements;
    }

    get kind() {
      return this.elements.kind.value;
    }

    // -- the request --------------------------------------------------------------------------

    members() {
      const e = this.elements;
      if (this.kind === "backup") {
        const self = this.pinned({ name: e.self_name.value.trim(), api_url: trimUrl(e.self_url.value) });
        const other = this.pinned({ name: e.other_name.value.trim(), api_url: trimUrl(e.other_url.value) });
        const main = e.my_role.value === "main" ? self : other;
        const backup = main === self ? other : self;
        return [{ ...main, role: "main" }, { ...backup, role: "backup" }];
      }
      return [0, 1, 2].map((i) => this.pinned({
        name: e[`member_name_${i}`].value.trim(),
        role: e[`member_role_${i}`].value,
        api_url: trimUrl(e[`member_url_${i}`].value),
        raft_address: e[`member_raft_${i}`].value.trim(),
      }));
    }

    // A member with the certificate fingerprint to pin: this server's own (this page came over it), or
    // one the administrator confirmed in the check step.
    pinned(member) {
      const own = this.root.dataset.tlsFingerprint;
      const fingerprint = member.api_url === trimUrl(window.location.origin) && own
        ? own : this.confirmed.get(member.api_url);
      return fingerprint && member.api_url.startsWith("https:") ? { ...member, tls_fingerprint: fingerprint } : member;
    }

    // The setup request without credentials: what the check vouches for.
    setup() {
      const e = this.elements;
      const members = this.members();
      if (this.kind === "backup") {
        const [main, backup] = members;
        return {
          name: e.name.value.trim(),
          main: { name: main.name, api_url: main.api_url, tls_fingerprint: main.tls_fingerprint },
          backup: { name: backup.name, api_url: backup.api_url, tls_fingerprint: backup.tls_fingerprint },
          interval_s: Number(e.interval_s.value),
          settings_from: e.settings_from.value || "main",
        };
      }
      return { name: e.name.value.trim(), members, seed: e.seed?.value || members[0].name };
    }

    signature() {
      const { settings_from: _from, seed: _seed, ...setup } = this.setup();
      const own = Object.entries(this.memberLogins()).map(([name, login]) => [name, login.username]);
      return JSON.stringify([this.kind, setup, this.elements.username.value, own]);
    }

    // The servers other than this one (the one this page came from).
    others() {
      const here = trimUrl(window.location.origin);
      return this.members().filter((member) => member.api_url !== here);
    }

    // Step 3: one username and password per other server, kept (by server name) while the wizard is open
    // when the servers are entered again.
    prepareLogins() {
      const box = this.dialog.querySelector("#wizard-member-logins");
      const own = this.elements.own_logins.checked;
      box.hidden = !own;
      const kept = new Map([...box.querySelectorAll("fieldset")].map((set) => [set.dataset.member, {
        username: set.querySelector('[data-login="username"]').value,
        password: set.querySelector('[data-login="password"]').value,
      }]));
      const sets = this.others().map((member, index) => {
        const set = make("fieldset", undefined, "grid-form member-login");
        set.dataset.member = member.name;
        set.append(make("legend", `${member.name} (${member.api_url})`));
        for (const [kind, label, type, auto] of [["username", "Username on", "text", "off"],
          ["password", "Password on", "password", "new-password"]]) {
          const field = make("div", undefined, "field");
          const input = make("input");
          Object.assign(input, {
            id: `wizard-login-${kind}-${index}`, type, required: own, autocomplete: auto,
            maxLength: kind === "username" ? 64 : 256,
          });
          input.dataset.login = kind;
          input.value = kept.get(member.name)?.[kind] ?? "";
          const text = make("label", `${label} ${member.name}`);
          text.htmlFor = input.id;
          field.append(text, input);
          set.append(field);
        }
        return set;
      });
      box.replaceChildren(...sets);
    }

    // { name: { username, password } } for each other server with an account of its own, or {}.
    memberLogins() {
      if (!this.elements.own_logins.checked) return {};
      const logins = {};
      for (const set of this.dialog.querySelectorAll("#wizard-member-logins fieldset")) {
        const username = set.querySelector('[data-login="username"]').value;
        const password = set.querySelector('[data-login="password"]').value;
        if (username && password) logins[set.dataset.member] = { username, password };
      }
      return logins;
    }

    forgetPasswords() {
      this.elements.password.value = "";
      for (const input of this.dialog.querySelectorAll('#wizard-member-logins [data-login="password"]')) input.value = "";
    }

    async call(checkOnly) {
      const body = {
        ...this.setup(),
        username: this.elements.username.value,
        password: this.elements.password.value,
        credentials: this.memberLogins(),
        check_only: checkOnly,
      };
      try {
        return { answer: await Console.api("POST", `${this.api}/${this.kind}`, body) };
      } catch (error) {
        return { error: { code: error.code, message: error.message, problems: error.details?.problems ?? [] } };
      }
    }

    // -- steps --------------------------------------------------------------------------------

    get index() {
      return STEPS.indexOf(this.step);
    }

    show(step) {
      this.step = step;
      this.say("");
      for (const [name, section] of Object.entries(this.steps)) section.hidden = name !== step;
      for (const item of this.dialog.querySelectorAll("[data-step-ref]")) {
        const position = STEPS.indexOf(item.dataset.stepRef);
        item.classList.toggle("is-done", position < this.index);
        if (item.dataset.stepRef === step) item.setAttribute("aria-current", "step");
        else item.removeAttribute("aria-current");
      }
      for (const node of this.dialog.querySelectorAll("[data-kind]")) node.hidden = node.dataset.kind !== this.kind;
      const last = step === "result";
      this.buttons.back.hidden = this.index === 0 || (last && this.succeeded);
      this.buttons.next.hidden = step === "summary" || last;
      this.buttons.finish.hidden = step !== "summary";
      this.buttons.cancel.hidden = last && this.succeeded;
      this.buttons.close.hidden = !(last && this.succeeded);
      if (step === "seed") this.prepareSeed();
      if (step === "summary") this.summarize();
      if (step === "check") {
        this.checkButton.textContent = this.checked ? "Check again" : "Check";
        this.prepareLogins();
      }
      this.steps[step].querySelector(".wizard-step-heading").focus();
    }

    say(text, kind = "error") {
      if (!text) {
        this.message.hidden = true;
        this.message.textContent = "";
        return;
      }
      Console.say(this.message, text, kind);
    }

    // The fields of the current step that are shown: each must be valid before Next.
    valid() {
      const fields = [...this.steps[this.step].querySelectorAll("input, select")]
        .filter((field) => !field.closest("[hidden]"));
      for (const field of fields) field.setCustomValidity("");
      this.distinct();
      const invalid = fields.find((field) => !field.checkValidity());
      if (invalid) {
        invalid.reportValidity();
        invalid.focus();
        return false;
      }
      return true;
    }

    // Names, roles, URLs and Raft addresses must differ between the servers.
    distinct() {
      if (this.step !== "servers") return;
      const groups = this.kind === "backup"
        ? [["self_name", "other_name"], ["self_url", "other_url"]]
        : ["member_name_", "member_role_", "member_url_", "member_raft_"].map((p) => [0, 1, 2].map((i) => p + i));
      for (const group of groups) {
        const seen = new Map();
        for (const name of group) {
          const field = this.elements[name];
          const value = trimUrl(field.value).toLowerCase();
          if (!value) continue;
          if (seen.has(value)) {
            field.setCustomValidity(`Each server needs its own value here; ${seen.get(value)} has it already.`);
          }
          seen.set(value, field.labels?.[0]?.textContent ?? name);
        }
      }
    }

    async next() {
      if (this.busy || !this.valid()) return;
      if (this.step === "check" && this.passed !== this.signature()) {
        this.say("The check must pass before you continue: run it (again) after fixing what it found.");
        this.checkButton.focus();
        return;
      }
      this.show(STEPS[this.index + 1]);
    }

    back() {
      if (this.busy || this.index === 0) return;
      this.show(STEPS[this.step === "result" ? STEPS.indexOf("summary") : this.index - 1]);
    }

    async check() {
      if (this.busy || !this.valid()) return;
      const servers = this.members();
      const result = this.dialog.querySelector("#wizard-check-result");
      this.busy = true;
      this.say("");
      result.setAttribute("aria-busy", "true");
      result.replaceChildren(make("p", "Checking every server…", "muted"));
      await Console.busy(this.checkButton, async () => {
        const outcome = await this.call(true);
        this.checked = true;
        this.passed = outcome.error ? null : this.signature();
        result.dataset.outcome = outcome.error ? outcome.error.code : "passed";
        result.replaceChildren(...renderCheck(servers, outcome, this.confirmed));
      });
      result.removeAttribute("aria-busy");
      this.checkButton.textContent = "Check again";
      this.busy = false;
    }

    // Step 4: whose data the relationship starts from; the triad's list is made from the members.
    prepareSeed() {
      const members = this.members();
      if (this.kind === "backup") {
        const [main, backup] = members;
        for (const node of this.dialog.querySelectorAll("[data-seed-name]")) {
          const member = node.dataset.seedName === "main" ? main : backup;
          node.textContent = `${member.name} (${member.api_url})`;
        }
        return;
      }
      const list = this.dialog.querySelector("#wizard-seed-list");
      const here = members.find((member) => member.api_url === trimUrl(window.location.origin));
      const chosen = this.elements.seed?.value;
      const choices = members.map((member, index) => {
        const label = make("label", undefined, "choice");
        const input = make("input");
        Object.assign(input, { type: "radio", name: "seed", value: member.name, id: `wizard-seed-${index}` });
        input.checked = chosen ? chosen === member.name : member === (here ?? members[0]);
        label.htmlFor = input.id;
        const text = make("span");
        text.append(make("strong", member.name), ` (${member.role}, ${member.api_url})`);
        if (member === here) text.append(" ", make("span", "this server", "tag tag-quiet"));
        label.append(input, text);
        return label;
      });
      list.querySelectorAll("label.choice").forEach((node) => node.remove());
      list.append(...choices);
    }

    summarize() {
      const setup = this.setup();
      const rows = [["Relationship", this.kind === "backup" ? "Backup (main + backup)" : "Triad"], ["Name", setup.name]];
      for (const member of this.members()) {
        const where = member.raft_address ? `${member.api_url}, Raft ${member.raft_address}` : member.api_url;
        rows.push([member.role[0].toUpperCase() + member.role.slice(1), `${member.name} (${where})`]);
        if (member.tls_fingerprint) rows.push([`Certificate of ${member.name}`, member.tls_fingerprint]);
      }
      if (this.kind === "backup") {
        const from = setup.settings_from === "main" ? setup.main.name : setup.backup.name;
        rows.push(["Settings and access rules", `from ${from} (the ${setup.settings_from})`]);
        rows.push(["Licenses", "each server keeps its own"]);
        rows.push(["Synchronization", `every ${setup.interval_s} s`]);
      } else {
        rows.push(["Settings, rules and users", `from ${setup.seed}; each member keeps its own server name`]);
        rows.push(["Licenses", "one pool: every member's licenses, one copy of each (listed below)"]);
        this.showPool();
      }
      const list = this.dialog.querySelector("#wizard-summary");
      list.replaceChildren(...rows.flatMap(([term, value]) => [make("dt", term), make("dd", value)]));
    }

    // The triad's license pool for the chosen seed, per server: what joins, and what cannot and why.
    async showPool() {
      const box = this.dialog.querySelector("#wizard-license-pool");
      box.setAttribute("aria-busy", "true");
      box.replaceChildren(make("p", "Reading every server's licenses…", "muted"));
      const outcome = await this.call(true);
      box.removeAttribute("aria-busy");
      if (outcome.error) {
        box.replaceChildren(make("p", `The licenses could not be read: ${outcome.error.message}`, "check-bad"));
        return;
      }
      const nodes = [make("h4", "Licenses of the triad")];
      const describe = (line) => `${line.license_id}: ${line.product}, ${line.count} ${line.unit}`;
      for (const member of outcome.answer.license_pool ?? []) {
        const section = make("section", undefined, "license-pool-member");
        section.dataset.server = member.server;
        section.append(make("h5", member.server));
        const list = make("ul");
        for (const line of member.joining) list.append(make("li", `${describe(line)} — joins the pool`, "check-ok"));
        for (const line of member.not_joining) {
          list.append(make("li", `${describe(line)} — cannot join: ${line.reason}; ${member.server} gets it back ` +
            "when the triad is removed", "check-bad"));
        }
        if (!member.joining.length && !member.not_joining.length) list.append(make("li", "No licenses.", "muted"));
        section.append(list);
        nodes.push(section);
      }
      nodes.push(make("p", "When the triad is removed, each license goes back to the server that brought it; " +
        "licenses added to the triad stay with the primary.", "help"));
      box.replaceChildren(...nodes);
    }

    async finish() {
      if (this.busy) return;
      this.busy = true;
      this.say("");
      const result = this.dialog.querySelector("#wizard-result");
      await Console.busy(this.buttons.finish, async () => {
        this.say(this.kind === "triad" ? "Setting up the triad: every member joins in turn…"
          : "Setting up the backup relationship…", "ok");
        const servers = this.members();
        const setup = this.setup();
        const outcome = await this.call(false);
        this.succeeded = !outcome.error;
        result.dataset.outcome = outcome.error ? outcome.error.code : "done";
        if (outcome.error) {
          result.replaceChildren(make("p", "The relationship was not set up.", "check-bad check-summary"),
            ...renderCheck(servers, outcome, this.confirmed));
        } else {
          this.forgetPasswords();
          result.replaceChildren(...this.success(outcome.answer, setup));
        }
      });
      this.busy = false;
      this.show("result");
      if (this.succeeded) this.onDone?.();
    }

    success(answer, setup) {
      const nodes = [];
      if (this.kind === "backup") {
        nodes.push(make("p", `✓ Backup relationship ${answer.backup_pair} is set up: ${answer.main} is the main, ` +
          `${answer.backup} the backup. Settings and access rules come from ${setup.settings_from === "main"
            ? answer.main : answer.backup}; each server keeps its own licenses.`, "check-ok check-summary"));
        nodes.push(make("p", "The Redundancy page now shows the pair and its synchronization status."));
      } else {
        nodes.push(make("p", `✓ Triad ${answer.triad} is set up with ${answer.members.join(", ")}; its settings, ` +
          `rules and users come from ${answer.seeded_from}, and its licenses are the members' licenses as one pool.`,
        "check-ok check-summary"));
        nodes.push(make("p", "The primary becomes active within a second; the diagram on the page shows it."));
        const here = this.members().find((member) => member.api_url === trimUrl(window.location.origin));
        if (here && here.name !== answer.seeded_from) {
          nodes.push(make("p", `This server now has the users of ${answer.seeded_from}: if the console asks, log in ` +
            `again with your account on ${answer.seeded_from}.`, "message message-info"));
        }
      }
      return nodes;
    }

    // -- opening and closing ------------------------------------------------------------------

    open(opener) {
      this.opener = opener;
      this.form.reset();
      this.prefill();
      this.passed = null;
      this.confirmed.clear();
      this.checked = false;
      this.succeeded = false;
      this.dialog.querySelector("#wizard-check-result").replaceChildren();
      this.dialog.querySelector("#wizard-result").replaceChildren();
      this.dialog.querySelector("#wizard-member-logins").replaceChildren();
      this.dialog.showModal();
      this.show("type");
    }

    prefill() {
      const e = this.elements;
      const origin = trimUrl(window.location.origin);
      const name = this.root.dataset.serverName || "";
      e.self_url.value = origin;
      e.self_name.value = name;
      e.member_url_0.value = origin;
      e.member_name_0.value = name;
      e.member_raft_0.value = `${window.location.hostname}:9470`;
      ROLES.forEach((role, index) => {
        e[`member_role_${index}`].value = role;
      });
      e.username.value = this.root.dataset.username || "";
    }

    close() {
      if (this.busy) return;
      this.dialog.close();
    }

    // Closed by Cancel, Close or Esc: forget the password; focus goes back where it came from.
    closed() {
      this.forgetPasswords();
      this.say("");
      if (this.opener && !this.opener.closest("[hidden]")) this.opener.focus();
      else this.onClose?.();
    }

    bind() {
      this.form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (this.step === "summary") this.finish();
        else if (this.step !== "result") this.next();
      });
      // Enter in the credentials runs the check (until it passed), rather than Next.
      this.steps.check.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" || event.target.tagName !== "INPUT" || this.passed === this.signature()) return;
        event.preventDefault();
        this.check();
      });
      this.buttons.back.addEventListener("click", () => this.back());
      this.buttons.cancel.addEventListener("click", () => this.close());
      this.buttons.close.addEventListener("click", () => this.close());
      this.buttons.finish.addEventListener("click", () => this.finish());
      this.checkButton.addEventListener("click", () => this.check());
      this.dialog.addEventListener("cancel", (event) => {
        if (this.busy) event.preventDefault();
      });
      this.dialog.addEventListener("close", () => this.closed());
      this.elements.own_logins.addEventListener("change", () => this.prepareLogins());
      // The backup form names the other server after this one's role.
      for (const radio of this.dialog.querySelectorAll('input[name="my_role"]')) {
        radio.addEventListener("change", () => {
          const other = this.elements.my_role.value === "main" ? "backup" : "main";
          for (const node of this.dialog.querySelectorAll("[data-other-role]")) node.textContent = other;
        });
      }
      for (const opener of document.querySelectorAll("[data-open-wizard]")) {
        opener.addEventListener("click", () => this.open(opener));
      }
    }
  }

  window.RedundancyWizard = {
    init(root, options) {
      if (!document.getElementById("setup-wizard")) return null; // a viewer's page has no wizard
      const wizard = new Wizard(root, options);
      wizard.bind();
      return wizard;
    },
    renderCheck,
  };
})();
