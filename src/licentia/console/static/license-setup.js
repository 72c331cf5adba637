// License Setup: read the chosen license file in the browser and POST it as is to the admin API,
// which verifies its signature; its refusal (forged, expired, untrusted, duplicate) is shown as given.
(() => {
  "use strict";
  Console.pages["license-setup"] = (root) => {
    const form = root.getElementById("license-upload");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      Console.clear(form);
      const file = form.elements.file.files[0];
      if (!file) {
        Console.say(form, "Choose a license file first.", "error");
        form.elements.file.focus();
        return;
      }
      if (file.size > Number(form.dataset.maxBytes)) {
        Console.say(form, `${file.name} is ${file.size} bytes; a license file is at most ${form.dataset.maxBytes}.`, "error");
        return;
      }
      const text = await file.text();
      await Console.busy(form.querySelector("button[type=submit]"), async () => {
        let added;
        try {
          added = await Console.api("POST", "/api/v1/admin/licenses", text, { raw: true });
        } catch (error) {
          Console.fail(form, new Error(`${file.name} was not added: ${error.message}`));
          return;
        }
        form.reset();
        Console.say(form, `Added license ${added.license_id}: ${added.product}, ${added.count} ${added.unit}.`);
        await Console.refresh("licenses");
      });
    });
  };
})();
