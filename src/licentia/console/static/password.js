// First start: the admin sets its own password through the users API; the session ends with the
// old password, so the next step is the login page.
(() => {
  "use strict";
  Console.pages["set-password"] = (root) => {
    const form = root.getElementById("set-password");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const password = form.elements.password.value;
      if (password.length < 8) {
        Console.say(form, "The password needs at least 8 characters.", "error");
        form.elements.password.focus();
        return;
      }
      if (password !== form.elements.confirm.value) {
        Console.say(form, "The two passwords differ. Type the same password twice.", "error");
        form.elements.confirm.focus();
        return;
      }
      const username = form.dataset.username;
      await Console.busy(form.querySelector("button[type=submit]"), async () => {
        try {
          await Console.api("PUT", `/api/v1/admin/users/${encodeURIComponent(username)}`, { password, role: "admin" });
        } catch (error) {
          Console.fail(form, error);
          return;
        }
        window.location.assign(`${Console.path}/login?changed=password`);
      });
    });
  };
})();
