// Alert Setup: save the whole alert setup (PUT, guarded by the version the page was rendered with) and
// send a test alert to the recipients and webhook in the form, showing what each channel answered.
(() => {
  "use strict";
  const ALERTS = "/api/v1/admin/alerts";
  const NUMBERS = ["member_down_after_s", "backup_unsynchronized_after_s", "expiring_within_days", "denials_threshold",
    "denials_window_s"];

  Console.pages["alert-setup"] = (root) => {
    const form = root.getElementById("alert-form");
    const save = root.getElementById("alert-save");
    if (!save) return;
    const result = root.getElementById("test-result");
    const f = form.elements;

    const recipients = () => f.recipients.value.split(/[\s,;]+/).filter(Boolean);

    const body = () => {
      const settings = {
        enabled: f.enabled.checked,
        recipients: recipients(),
        webhook_url: f.webhook_url.value.trim(),
        muted_kinds: [...form.querySelectorAll("input[data-kind]")].filter((box) => !box.checked)
          .map((box) => box.dataset.kind),
        expected_version: Number(f.expected_version.value),
      };
      for (const name of NUMBERS) {
        const value = f[name].value.trim();
        if (value === "" || Number.isNaN(Number(value))) {
          throw new Console.ApiError(422, "invalid_request", `${form.querySelector(`label[for="${f[name].id}"]`).textContent} needs a number.`);
        }
        settings[name] = name === "denials_threshold" ? Math.round(Number(value)) : Number(value);
      }
      return settings;
    };

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      Console.clear(form);
      await Console.busy(save, async () => {
        let answer;
        try {
          answer = await Console.api("PUT", ALERTS, body());
        } catch (error) {
          if (error.code === "version_conflict") {
            error.message = `Someone else changed the alert setup since this page was loaded (${error.message}). ` +
              "Reload the page to see their change, then make yours again.";
          }
          Console.fail(form, error);
          return;
        }
        f.expected_version.value = String(answer.version);
        delete form.dataset.dirty;
        Console.say(form, `Alert setup saved (version ${answer.version}).`);
        await Console.refresh("activity");
      });
    });

    root.getElementById("alert-test").addEventListener("click", async (event) => {
      const button = event.currentTarget;
      result.hidden = true;
      await Console.busy(button, async () => {
        let message;
        let ok = true;
        try {
          const answer = await Console.api("POST", `${ALERTS}/test`,
            { recipients: recipients(), webhook_url: f.webhook_url.value.trim() });
          message = "Test alert delivered: " + answer.results.map((r) => `${r.channel} to ${r.target}`).join("; ") + ".";
        } catch (error) {
          ok = false;
          message = `The test alert was not delivered: ${error.message}`;
        }
        result.textContent = message;
        result.className = `message ${ok ? "message-ok" : "message-error"}`;
        result.setAttribute("role", ok ? "status" : "alert");
        result.hidden = false;
        await Console.refresh("activity");
      });
    });
  };
})();
