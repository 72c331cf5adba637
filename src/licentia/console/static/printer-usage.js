// Printer Usage: the failed-only filter applies at once; mapping rules are edited as one ordered list
// (the API takes the whole list), fetched fresh before each change so another admin's edit is not undone.
(() => {
  "use strict";
  const GROUPS = "/api/v1/admin/printer-groups";
  const RULES = "/api/v1/admin/printer-mapping-rules";
  const same = (a, b) => a && b && a.field === b.field && a.pattern === b.pattern && a.group === b.group;

  Console.pages["printer-usage"] = (root) => {
    const failedOnly = root.getElementById("failed-only");
    failedOnly?.addEventListener("change", () => failedOnly.form.requestSubmit());

    const panel = root.getElementById("rules-panel");
    const form = root.getElementById("mapping-form");
    if (!panel || !form) return;

    const shown = (row) => ({ field: row.dataset.field, pattern: row.dataset.pattern, group: row.dataset.group });

    // Apply `edit` to the current list; refuse when the row the user acted on is no longer where it was.
    const change = async (edit) => {
      const current = (await Console.api("GET", GROUPS)).mapping_rules;
      const rules = edit(current.slice());
      await Console.api("PUT", RULES, { rules });
    };
    const stillThere = (rules, index, rule) => {
      if (!same(rules[index], rule)) {
        throw new Console.ApiError(409, "rules_changed", "The mapping rules changed meanwhile; the list is now up to date. Try again.");
      }
    };

    const editMode = (index, rule) => {
      const editing = index !== null;
      root.getElementById("mapping-form-heading").textContent = editing ? `Edit rule ${index + 1}` : "Add a rule";
      root.getElementById("mapping-submit").textContent = editing ? "Save rule" : "Add rule";
      root.getElementById("mapping-cancel").hidden = !editing;
      form.elements.index.value = editing ? String(index) : "";
      form.dataset.original = editing ? JSON.stringify(rule) : "";
      if (editing) {
        for (const name of ["field", "pattern", "group"]) form.elements[name].value = rule[name];
      } else {
        form.reset();
      }
    };

    root.getElementById("mapping-cancel").addEventListener("click", () => {
      editMode(null);
      Console.clear(form);
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      Console.clear(form);
      Console.clear(panel);
      const f = form.elements;
      const rule = { field: f.field.value, pattern: f.pattern.value, group: f.group.value };
      const index = f.index.value === "" ? null : Number(f.index.value);
      await Console.busy(root.getElementById("mapping-submit"), async () => {
        try {
          await change((rules) => {
            if (index === null) return [...rules, rule];
            stillThere(rules, index, JSON.parse(form.dataset.original));
            rules[index] = rule;
            return rules;
          });
        } catch (error) {
          Console.fail(form, error);
          if (error.code === "rules_changed") await Console.refresh("rules");
          return;
        }
        editMode(null);
        Console.say(form, index === null ? "Rule added at the end of the list." : `Rule ${index + 1} saved.`);
        await Console.refresh("rules");
      });
    });

    panel.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-mapping-action]");
      if (!button) return;
      const row = button.closest("tr");
      const index = Number(row.dataset.index);
      const rule = shown(row);
      const action = button.dataset.mappingAction;
      Console.clear(panel);
      Console.clear(form);
      if (action === "edit") {
        editMode(index, rule);
        root.getElementById("mapping-editor").scrollIntoView({ block: "start" });
        form.elements.pattern.focus();
        return;
      }
      if (action === "delete"
        && !(await Console.confirm(button, `Delete mapping rule ${index + 1} (${rule.pattern})?`, "Delete"))) return;
      await Console.busy(button, async () => {
        try {
          await change((rules) => {
            stillThere(rules, index, rule);
            const to = action === "up" ? index - 1 : action === "down" ? index + 1 : index;
            if (action === "delete") rules.splice(index, 1);
            else if (to >= 0 && to < rules.length) [rules[index], rules[to]] = [rules[to], rules[index]];
            return rules;
          });
        } catch (error) {
          Console.fail(panel, error);
          if (error.code === "rules_changed") await Console.refresh("rules");
          return;
        }
        if (form.elements.index.value !== "") editMode(null);
        Console.say(panel, action === "delete" ? "Rule deleted." : `Rule moved ${action}.`);
        await Console.refresh("rules");
        const moved = action === "up" ? index - 1 : index + 1;
        panel.querySelector(`tr[data-index="${moved}"] button[data-mapping-action="${action}"]:not([disabled])`)?.focus();
      });
    });
  };
})();
