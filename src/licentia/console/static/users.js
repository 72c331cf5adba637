// Users: changing your own password or role ends your session, so go to the login page after it.
(() => {
  "use strict";
  Console.pages.users = (root) => {
    const me = root.querySelector("[data-me]")?.dataset.me;
    root.addEventListener("submit", (event) => {
      const form = event.target;
      if (!me || form.elements.username?.value !== me) return;
      // The shared handler makes the change; reload once it is done to reach the login page.
      form.dataset.after = `navigate:${Console.path}/login?changed=account`;
    }, true);
  };
})();
