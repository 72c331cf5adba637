// License Setup: read the chosen license file in the browser and POST it as is to the admin API,
// which verifies its signature; its refusal (forged, expired, untrusted, duplicate) is shown as given.
(() => {
  "use strict";
  // The file chosen in `form`, or null after saying why not: none chosen (`missing`), or larger than the
  // form's data-max-bytes (`what` names the kind of file in that sentence).
  const chosenFile = (form, missing, what) => {
    const file = form.elements.file.files[0];
    if (!file) {
      Console.say(form, missing, "error");
      form.elements.file.focus();
      return null;
    }
    if (file.size > Number(form.dataset.maxBytes)) {
      Console.say(form, `${file.name} is ${file.size} bytes; ${what} is at most ${form.dataset.maxBytes}.`, "error");
      return null;
    }
    return file;
  };

  // Trust an issuer key: the chosen .pub file's text goes to the admin API, which checks it is an Ed25519
  // public key before keeping it; the server trusts it at once.
  const trustForm = (root) => {
    const form = root.getElementById("issuer-upload");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      Console.clear(form);
      const file = chosenFile(form, "Choose the issuer's .pub file first.", "an issuer public key file");
      if (!file) return;
      const text = await file.text();
      await Console.busy(form.querySelector("button[type=submit]"), async () => {
        let trusted;
        try {
          trusted = await Console.api("POST", "/api/v1/admin/trusted-issuers", { public_key: text });
        } catch (error) {
          Console.fail(form, new Error(`${file.name} was not trusted: ${error.message}`));
          return;
        }
        form.reset();
        const count = trusted.trusted_issuers.length;
        root.getElementById("trusted-ids").textContent = trusted.trusted_issuers.join(", ");
        root.getElementById("trusted-count").textContent = `${count} trusted issuer key${count === 1 ? "" : "s"}`;
        Console.say(form, trusted.new
          ? `This server now trusts issuer key ${trusted.key_id}; licenses it signed can be added.`
          : `This server already trusted issuer key ${trusted.key_id}.`);
      });
    });
  };

  Console.pages["license-setup"] = (root) => {
    trustForm(root);
    const form = root.getElementById("license-upload");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      Console.clear(form);
      const file = chosenFile(form, "Choose a license file first.", "a license file");
      if (!file) return;
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
