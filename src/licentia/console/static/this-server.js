// This License Server: edit the ordered access rules (the API takes the whole list), the default
// policy, and test which rule decides a request.
(() => {
  "use strict";
  const RULES = "/api/v1/admin/access-rules";

  Console.pages["this-server"] = (root) => {
    const section = root.getElementById("rules").closest("section");
    const ruleForm = root.getElementById("rule-form");
    const policyForm = root.getElementById("policy-form");
    const testForm = root.getElementById("test-form");
    const settingsForm = root.getElementById("settings-form");

    // Settings: only what changed is sent, guarded by the version the page showed, so a concurrent
    // change by another administrator is reported instead of overwritten.
    settingsForm?.addEventListener("submit", async (event) => {
      event.preventDefault();
      Console.clear(settingsForm);
      const { body } = Console.formBody(settingsForm);
      const changes = {};
      for (const [name, value] of Object.entries(body)) {
        if (String(value) !== settingsForm.elements[name].defaultValue) changes[name] = value;
      }
      if (!Object.keys(changes).length) {
        Console.say(settingsForm, "Nothing changed.");
        return;
      }
      await Console.busy(event.submitter, async () => {
        try {
          const answer = await Console.api("PATCH", "/api/v1/admin/settings",
            { changes, expected_version: Number(settingsForm.dataset.version) });
          settingsForm.dataset.version = answer.version;
          for (const name of Object.keys(changes)) settingsForm.elements[name].defaultValue = String(changes[name]);
          Console.say(settingsForm, `Saved (settings version ${answer.version}).`);
        } catch (error) {
          Console.fail(settingsForm, error);
        }
      });
    });
    const result = root.getElementById("test-result");

    // Change the current list (fetched fresh, so another admin's change is not undone) and save it.
    const change = async (edit, { policy } = {}) => {
      const current = await Console.api("GET", RULES);
      const rules = edit(current.rules.slice());
      return Console.api("PUT", RULES, { rules, default_policy: policy ?? current.default_policy });
    };

    const refreshRules = async (focusRuleId, action) => {
      await Console.refresh("rules");
      result.hidden = true;
      if (focusRuleId) {
        const row = root.querySelector(`tr[data-rule-id="${CSS.escape(focusRuleId)}"]`);
        const other = action === "up" ? "down" : "up";
        const button = row?.querySelector(`button[data-rule-action="${action}"]:not([disabled])`)
          ?? row?.querySelector(`button[data-rule-action="${other}"]:not([disabled])`)
          ?? row?.querySelector("button[data-rule-action]");
        button?.focus();
      }
    };

    // -- the rule form: add, or edit the rule whose id it holds ---------------------------------

    const whoKind = ruleForm?.elements.who_kind;
    const whereKind = ruleForm?.elements.where_kind;
    const syncKinds = () => {
      ruleForm.elements.who.disabled = whoKind.value === "any";
      ruleForm.elements.where.disabled = whereKind.value === "any";
    };
    const editMode = (rule) => {
      const heading = root.getElementById("rule-form-heading");
      const position = rule ? [...root.querySelectorAll("tr[data-rule-id]")].findIndex((row) => row.dataset.ruleId === rule.rule_id) + 1 : 0;
      heading.textContent = rule ? `Edit rule ${position}` : "Add a rule";
      root.getElementById("rule-submit").textContent = rule ? "Save rule" : "Add rule";
      root.getElementById("rule-cancel").hidden = !rule;
      ruleForm.elements.rule_id.value = rule ? rule.rule_id : "";
      if (rule) {
        for (const name of ["action", "who_kind", "who", "where_kind", "where", "description"]) {
          ruleForm.elements[name].value = rule[name];
        }
      } else {
        ruleForm.reset();
      }
      syncKinds();
      delete ruleForm.dataset.dirty;
    };
    if (ruleForm) {
      whoKind.addEventListener("change", syncKinds);
      whereKind.addEventListener("change", syncKinds);
      syncKinds();
      root.getElementById("rule-cancel").addEventListener("click", () => {
        editMode(null);
        Console.clear(ruleForm);
      });
      ruleForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        Console.clear(ruleForm);
        const f = ruleForm.elements;
        const rule = {
          rule_id: f.rule_id.value,
          action: f.action.value,
          who_kind: f.who_kind.value,
          who: f.who_kind.value === "any" ? "*" : f.who.value.trim(),
          where_kind: f.where_kind.value,
          where: f.where_kind.value === "any" ? "*" : f.where.value.trim(),
          description: f.description.value.trim(),
        };
        const editing = Boolean(rule.rule_id);
        await Console.busy(root.getElementById("rule-submit"), async () => {
          try {
            await change((rules) => {
              if (editing) {
                const at = rules.findIndex((r) => r.rule_id === rule.rule_id);
                if (at < 0) throw new Console.ApiError(404, "rule_gone", "That rule was deleted meanwhile.");
                rules[at] = rule;
              } else {
                const taken = new Set(rules.map((r) => r.rule_id));
                let n = rules.length + 1;
                while (taken.has(`rule-${n}`)) n += 1;
                rule.rule_id = `rule-${n}`;
                rules.push(rule);
              }
              return rules;
            });
          } catch (error) {
            Console.fail(ruleForm, error);
            return;
          }
          editMode(null);
          Console.say(ruleForm, editing ? "Rule saved." : "Rule added at the end of the list.");
          await refreshRules();
        });
      });
    }

    // -- row buttons: edit, move up or down, delete ---------------------------------------------

    section.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-rule-action]");
      if (!button) return;
      const ruleId = button.closest("tr").dataset.ruleId;
      const action = button.dataset.ruleAction;
      Console.clear(section);
      if (action === "edit") {
        try {
          const current = await Console.api("GET", RULES);
          editMode(current.rules.find((r) => r.rule_id === ruleId));
        } catch (error) {
          Console.fail(section, error);
          return;
        }
        root.getElementById("rule-editor").scrollIntoView({ block: "start" });
        ruleForm.elements.action.focus();
        return;
      }
      if (action === "delete" && !(await Console.confirm(button, "Delete this access rule?", "Delete"))) return;
      await Console.busy(button, async () => {
        try {
          await change((rules) => {
            const at = rules.findIndex((r) => r.rule_id === ruleId);
            if (at < 0) return rules;
            if (action === "delete") rules.splice(at, 1);
            const to = action === "up" ? at - 1 : action === "down" ? at + 1 : at;
            if (to !== at && to >= 0 && to < rules.length) [rules[at], rules[to]] = [rules[to], rules[at]];
            return rules;
          });
        } catch (error) {
          Console.fail(section, error);
          return;
        }
        if (action === "delete") {
          if (ruleForm?.elements.rule_id.value === ruleId) editMode(null);
          Console.say(section, "Rule deleted.");
        }
        await refreshRules(action === "delete" ? null : ruleId, action);
      });
    });

    // -- default policy -------------------------------------------------------------------------

    policyForm?.addEventListener("submit", async (event) => {
      event.preventDefault();
      Console.clear(policyForm);
      const policy = policyForm.elements.default_policy.value;
      await Console.busy(policyForm.querySelector("button"), async () => {
        try {
          await change((rules) => rules, { policy });
        } catch (error) {
          Console.fail(policyForm, error);
          return;
        }
        Console.say(policyForm, `Requests that match no rule are now ${policy === "allow" ? "allowed" : "denied"}.`);
        await refreshRules();
      });
    });

    // -- test a request -------------------------------------------------------------------------

    testForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      Console.clear(testForm);
      const { body } = Console.formBody(testForm);
      let answer;
      try {
        answer = await Console.api("POST", `${RULES}/test`, body);
      } catch (error) {
        Console.fail(testForm, error);
        return;
      }
      for (const row of root.querySelectorAll("tr.matched")) row.classList.remove("matched");
      let where = `the ${answer.decided_by}`;
      if (answer.rule_id) {
        const row = root.querySelector(`tr[data-rule-id="${CSS.escape(answer.rule_id)}"]`);
        row?.classList.add("matched");
        const position = row ? row.querySelector("td").textContent.trim() : "?";
        where = `rule ${position}`;
      }
      result.textContent = `${answer.allowed ? "Allowed" : "Denied"} by ${where}.`;
      result.className = `result ${answer.allowed ? "result-allow" : "result-deny"}`;
      result.hidden = false;
    });
  };
})();
