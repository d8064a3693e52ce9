// Drives Confab's web console in headless Chromium with playwright-core, as two operators
// would: the administrator signs in, selects the users of pool `default` and moves them to
// pool `b` (more than 100: a normal change is requested); the approver signs in in a browser
// context of its own and approves it; the administrator implements it and watches the users
// arrive on pool b, then the dashboard. Screenshots go to --shots; the Rust test prints them
// into the CI log. Every wait is bounded (playwright's timeouts).
//
//   node console.mjs --base http://127.0.0.1:PORT --admin-token T --approver-token A \
//        --users N --shots DIR
//
// Run by crates/confab/tests/console_browser.rs (scripts/console-browser.sh).

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
for (const k of ["base", "admin-token", "approver-token", "users", "shots"]) {
  if (!args[k]) {
    console.error(`missing --${k}`);
    process.exit(2);
  }
}
const base = args.base;
const users = Number(args.users);
mkdirSync(args.shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function signIn(browser, name, token) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  check(page.url().endsWith("/console/signin"), `${name}: without a session, the sign-in page`);
  await page.getByLabel("Administrator").fill(name);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/console`);
  check(
    (await page.locator("header").innerText()).includes(`Signed in as ${name}`),
    `${name}: signed in`,
  );
  return page;
}

async function shot(page, name) {
  const path = join(args.shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const admin = await signIn(browser, "admin", args["admin-token"]);
  await shot(admin, "1-dashboard");

  // The users of pool default, moved to b.
  await admin.getByRole("link", { name: "Users" }).click();
  await admin.getByLabel("Pool", { exact: true }).selectOption("default");
  await admin.getByRole("button", { name: "Search" }).click();
  check(
    (await admin.locator("main").innerText()).includes(`${users} user(s)`),
    `${users} users found on pool default`,
  );
  await admin.getByLabel("To pool").selectOption("b");
  await admin.getByLabel("Reason (for the change record)").fill("move the production users");
  await admin.getByRole("button", { name: "Move" }).click();
  await admin.waitForURL(/\/console\/changes\/\d+/);
  const changeUrl = admin.url().split("?")[0];
  check(
    (await admin.locator("main").innerText()).includes("normal change"),
    "the move is requested as a normal change",
  );
  check(
    (await admin.locator("main").innerText()).includes("You requested this change"),
    "its requester may not approve it",
  );
  await shot(admin, "2-move-requested");

  // The approver, in its own session, finds it on the dashboard and approves it.
  const approver = await signIn(browser, "approver", args["approver-token"]);
  const id = changeUrl.split("/").pop();
  await approver.getByRole("link", { name: `#${id}`, exact: false }).first().click();
  await approver.getByLabel("Comment (optional)").first().fill("approved for tonight");
  await approver.getByRole("button", { name: "Approve" }).click();
  check(
    (await approver.locator("[role=status]").innerText()).includes("is approved"),
    "the approver approved it",
  );
  await shot(approver, "3-approved");

  // The administrator implements it and watches the users arrive on pool b.
  await admin.goto(changeUrl);
  await admin.getByRole("button", { name: "Implement" }).click();
  check(
    (await admin.locator("[role=status]").innerText()).includes("is implemented"),
    "the move is implemented",
  );
  let moved = false;
  for (let i = 0; i < 20 && !moved; i++) {
    await admin.goto(`${base}/console/users?pool=b`);
    moved = (await admin.locator("main").innerText()).includes(`${users} user(s)`);
    if (!moved) await admin.waitForTimeout(500);
  }
  check(moved, `all ${users} users are on pool b`);
  await admin.goto(`${base}/console`);
  const bars = await admin.locator("svg desc").first().textContent();
  check(bars.includes(`b: ${users}`) && bars.includes("default: 0"), `the dashboard's chart: ${bars}`);
  await shot(admin, "4-dashboard-after");
  await admin.goto(`${base}/console/migration`);
  await shot(admin, "5-users-over-time");
} finally {
  await browser.close();
}
console.log("console in Chromium: every check passed");
