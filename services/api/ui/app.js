// fundguard investigator UI: plain JavaScript, no build step, no external resources.
// Every DOM node is built with createElement/textContent (never innerHTML with data).

(() => {
  const TOKEN_KEY = "fundguard.token";
  const SVG_NS = "http://www.w3.org/2000/svg";

  // --- labels (中文 English) ---------------------------------------------------------
  const SEVERITY = { REMIND: "提醒 Remind", WARN: "警告 Warn", BLOCK: "拦截 Block" };
  const CASE_STATUS = {
    new: "待处理 New",
    under_review: "核查中 Under review",
    confirmed: "已确认 Confirmed",
    dismissed: "已排除 Dismissed",
  };
  const ENUMS = {
    visit_type: { OUTPATIENT: "门诊 Outpatient", INPATIENT: "住院 Inpatient", PHARMACY: "药店购药 Pharmacy" },
    discharge_reason: {
      NORMAL: "正常 Normal",
      TRANSFER: "转院 Transfer",
      DEATH: "死亡 Death",
      OTHER: "其他 Other",
    },
    death_source: {
      CIVIL_AFFAIRS: "民政 Civil affairs",
      PUBLIC_SECURITY: "公安 Public security",
      HEALTH: "卫健 Health",
      OTHER: "其他 Other",
    },
    gender: { M: "男 Male", F: "女 Female" },
    allowed_sex: { M: "男 Male", F: "女 Female" },
    event_type: { SETTLE: "结算 Settle", REVERSAL: "冲销 Reversal" },
    category: { DRUG: "药品 Drug", SERVICE: "诊疗 Service", MATERIAL: "耗材 Material" },
    kind: { DIAGNOSIS: "诊断 Diagnosis", ITEM: "项目 Item" },
    insurance_type: { EMPLOYEE: "职工 Employee", RESIDENT: "城乡居民 Resident" },
  };
  ENUMS.source = ENUMS.death_source;
  const FIELD = {
    suspect_id: "线索编号 Suspect id",
    detector: "检测器 Detector",
    rule: "规则 Rule",
    severity: "预警级别 Severity",
    person_id: "人员编号 Person",
    settlement_ids: "结算ID Settlements",
    settlement_id: "结算ID Settlement",
    institution_id: "机构编码 Institution",
    institution_name: "机构名称 Institution name",
    region_code: "行政区划 Region",
    amount_at_risk_fen: "涉及金额 Amount at risk",
    event_time: "结算时间 Settled at",
    detected_at: "发现时间 Detected at",
    detector_version: "检测器版本 Detector version",
    case_status: "处理状态 Case status",
    birth_date: "出生日期 Birth date",
    line_no: "行号 Line",
    item_code: "项目编码 Item code",
    item_name: "项目名称 Item name",
    service_date: "服务日期 Service date",
    amount_fen: "金额 Amount",
    gender: "性别 Sex",
    code: "编码 Code",
    name: "名称 Name",
    primary: "主诊断 Primary",
    admission_date: "入院日期 Admission",
    discharge_date: "出院日期 Discharge",
    discharge_reason: "离院方式 Discharge reason",
    visit_type: "就诊类型 Visit type",
    death_date: "死亡日期 Death date",
    source: "来源 Source",
    reported_at: "上报时间 Reported at",
    quantity: "数量 Quantity",
    unit_price_fen: "单价 Unit price",
    total_fen: "总费用 Total",
    fund_paid_fen: "统筹支付 Fund paid",
    settled_at: "结算时间 Settled at",
    diagnoses: "诊断 Diagnoses",
    items: "明细 Items",
    category: "类别 Category",
    event_type: "事件 Event",
    original_settlement_id: "原结算ID Original settlement",
    insurance_type: "险种 Insurance",
    visit_id: "就诊ID Visit",
  };
  // Evidence fields are named by their detectors (GET /api/v1/meta); the fields of the records are named here.
  let evidenceLabels = {};
  const label = (k) => FIELD[k] || evidenceLabels[k] || k;

  // --- small DOM helpers ---------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {}))
      if (v !== undefined && v !== null) el.setAttribute(k, String(v));
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  const yuan = (fen) =>
    `¥${(Number(fen) / 100).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const count = (n) => Number(n).toLocaleString("zh-CN");
  const fmtTime = (iso) =>
    iso
      ? String(iso)
          .replace("T", " ")
          .replace(/(\.\d+)?(Z|[+-]\d\d:\d\d)$/, "")
      : "";
  const badge = (cls, text) => h("span", { class: `badge ${cls}` }, text);
  const sevBadge = (sev) => badge(`sev-${sev}`, SEVERITY[sev] || sev);
  const statusBadge = (st) => badge(`st-${st}`, CASE_STATUS[st] || st);

  function toast(msg) {
    const t = $("toast");
    t.textContent = msg;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => {
      t.hidden = true;
    }, 3500);
  }

  // --- API -----------------------------------------------------------------------------
  const state = { me: null, meta: null };

  class ApiError extends Error {
    constructor(status, body) {
      super(body?.message || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path, opts = {}) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { Authorization: `Bearer ${token || ""}` };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method: opts.method || "GET",
      headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    });
    if (res.status === 401) {
      logout("登录已失效，请重新登录 Session expired, please log in again");
      throw new ApiError(401, null);
    }
    if (opts.raw) {
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      return res;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }

  function showError(container, err) {
    if (err && err.status === 401) return;
    const issues = err?.body?.issues ? err.body.issues.map((i) => `${i.path}: ${i.message}`) : [];
    container.replaceChildren(
      h(
        "div",
        { class: "card error", role: "alert" },
        `错误 Error: ${err.message}`,
        issues.length ? ` (${issues.join("; ")})` : "",
      ),
    );
  }

  // --- live updates (GET /api/v1/stream, ui/stream.js) --------------------------------------
  // One stream at a time, for the view on screen: a view that wants one opens it, any route closes it.
  // `owner` is the view's element: a view replaced while it was loading (a click away under load)
  // opens nothing, or it would close the stream of the view that replaced it.
  let closeLive = null;
  function live(params, onEvent, owner) {
    if (!owner.isConnected) return;
    stopLive();
    const q = apiFilters(params);
    q.delete("sort");
    closeLive = window.fundguardStream.open(q, {
      token: () => sessionStorage.getItem(TOKEN_KEY),
      onEvent,
      onStop: (status) => {
        if (status === 401) logout("登录已失效，请重新登录 Session expired, please log in again");
      },
    });
  }
  function stopLive() {
    closeLive?.();
    closeLive = null;
  }

  // --- login ---------------------------------------------------------------------------
  function logout(message) {
    stopLive();
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = null;
    state.meta = null;
    $("nav").hidden = true;
    $("who").hidden = true;
    $("view").replaceChildren();
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function login(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      state.me = await api("/api/v1/me");
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("login-error").textContent =
        err.status === 401 || !err.status ? "令牌无效 Invalid token" : `错误 Error: ${err.message}`;
      return false;
    }
    state.meta = await api("/api/v1/meta");
    evidenceLabels = {};
    for (const d of state.meta.detectors)
      for (const [k, l] of Object.entries(d.labels || {})) evidenceLabels[k] ??= `${l.zh} ${l.en}`;
    $("login").hidden = true;
    $("nav").hidden = false;
    $("who").hidden = false;
    $("nav-audit").hidden = !state.me.can.read_audit;
    const scope = state.me.regions ? ` · ${state.me.regions.join(",")}` : "";
    $("who-name").textContent = `${state.me.name} (${state.me.role}${scope})`;
    return true;
  }

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    if (await login($("token").value.trim())) route();
  });
  $("logout").addEventListener("click", () => {
    logout("");
    location.hash = "";
  });

  // --- routing -------------------------------------------------------------------------
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    return {
      parts: (path || "suspects").split("/").map(decodeURIComponent),
      params: new URLSearchParams(query || ""),
    };
  }
  function go(path, params) {
    const q = params && [...params.keys()].length ? `?${params}` : "";
    location.hash = `#/${path}${q}`;
  }

  async function route() {
    if (!state.me) return;
    stopLive();
    const { parts, params } = parseHash();
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle(
        "active",
        a.dataset.nav === parts[0] || (parts[0] === "case" && a.dataset.nav === "suspects"),
      );
    }
    const view = $("view");
    try {
      if (parts[0] === "case" && parts[1]) await caseView(view, parts[1], params);
      else if (parts[0] === "charts") await chartsView(view, params);
      else if (parts[0] === "audit") await auditView(view, params);
      else await listView(view, params);
    } catch (err) {
      showError(view, err);
    }
  }
  window.addEventListener("hashchange", route);

  // --- filters -------------------------------------------------------------------------
  const FILTER_KEYS = [
    "detector",
    "rule",
    "severity",
    "region",
    "institution",
    "person",
    "from",
    "to",
    "min_amount_fen",
    "status",
    "retracted",
    "sort",
  ];

  function ruleChoices(detector) {
    const out = [];
    for (const d of state.meta.detectors) {
      if (detector && d.id !== detector) continue;
      for (const [rule, info] of Object.entries(d.rules)) out.push([rule, `${info.titleZh} ${info.title}`]);
    }
    return out;
  }

  function select(name, choices, value, all = "全部 All") {
    return h(
      "select",
      { name, id: `f-${name}` },
      h("option", { value: "" }, all),
      choices.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
    );
  }

  function filterForm(params, { onSubmit, withSort = true, extra = [] }) {
    const detectorSel = select(
      "detector",
      state.meta.detectors.map((d) => {
        const first = Object.values(d.rules)[0];
        const title = Object.keys(d.rules).length === 1 && first ? `${first.titleZh} ${d.id}` : d.id;
        return [d.id, title];
      }),
      params.get("detector") || "",
    );
    let ruleSel = select("rule", ruleChoices(params.get("detector")), params.get("rule") || "");
    detectorSel.addEventListener("change", () => {
      const next = select("rule", ruleChoices(detectorSel.value), "");
      ruleSel.replaceWith(next);
      ruleSel = next;
    });
    const minYuan = params.get("min_amount_fen") ? String(Number(params.get("min_amount_fen")) / 100) : "";
    const form = h(
      "form",
      { class: "filters card", id: "filters" },
      h("label", {}, "检测器 Detector", detectorSel),
      h("label", {}, "规则 Rule", ruleSel),
      h(
        "label",
        {},
        "预警级别 Severity",
        select("severity", Object.entries(SEVERITY), params.get("severity") || ""),
      ),
      h(
        "label",
        {},
        "行政区划 Region",
        select(
          "region",
          state.meta.regions.map((r) => [r, r]),
          params.get("region") || "",
        ),
      ),
      h(
        "label",
        {},
        "机构编码 Institution",
        h("input", { name: "institution", value: params.get("institution") || "", maxlength: 64 }),
      ),
      h(
        "label",
        {},
        "人员编号 Person",
        h("input", {
          name: "person",
          value: params.get("person") || "",
          maxlength: 64,
          // Masked users may filter by the pseudonym they were shown only (the API refuses raw ids).
          placeholder: state.me.unmask ? undefined : "~… 假名 pseudonym",
        }),
      ),
      h(
        "label",
        {},
        "结算日期从 From",
        h("input", { type: "date", name: "from", value: params.get("from") || "" }),
      ),
      h("label", {}, "至 To", h("input", { type: "date", name: "to", value: params.get("to") || "" })),
      h(
        "label",
        {},
        "最低金额(元) Min amount (yuan)",
        h("input", { type: "number", min: 0, step: "0.01", name: "min_amount_yuan", value: minYuan }),
      ),
      h(
        "label",
        {},
        "处理状态 Case status",
        select("status", Object.entries(CASE_STATUS), params.get("status") || ""),
      ),
      h(
        "label",
        {},
        "已撤销 Retracted",
        select(
          "retracted",
          [
            ["include", "包含 Include"],
            ["only", "仅撤销 Only retracted"],
          ],
          params.get("retracted") || "",
          "隐藏 Hide",
        ),
      ),
      withSort
        ? h(
            "label",
            {},
            "排序 Sort",
            select(
              "sort",
              [
                ["newest", "最新 Newest"],
                ["oldest", "最早 Oldest"],
                ["amount_desc", "金额最大 Largest amount"],
                ["amount_asc", "金额最小 Smallest amount"],
              ],
              params.get("sort") || "",
              "最新 Newest",
            ),
          )
        : null,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", id: "search" }, "查询 Search"),
        h(
          "button",
          { type: "button", class: "secondary", onclick: () => onSubmit(new URLSearchParams()) },
          "重置 Reset",
        ),
        extra,
      ),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      onSubmit(formParams(form));
    });
    return form;
  }

  function formParams(form) {
    const p = new URLSearchParams();
    const fd = new FormData(form);
    for (const [k, v] of fd.entries()) {
      const value = String(v).trim();
      if (!value) continue;
      if (k === "min_amount_yuan") p.set("min_amount_fen", String(Math.round(Number(value) * 100)));
      else p.set(k, value);
    }
    return p;
  }

  function apiFilters(params) {
    const p = new URLSearchParams();
    for (const k of FILTER_KEYS) if (params.get(k)) p.set(k, params.get(k));
    return p;
  }

  // --- list ----------------------------------------------------------------------------
  async function listView(view, params) {
    const limit = Number(params.get("limit") || 50);
    const offset = Number(params.get("offset") || 0);
    const exportBtn = h("button", { type: "button", class: "secondary", id: "export" }, "导出 CSV Export");
    const form = filterForm(params, { onSubmit: (p) => go("suspects", p), extra: [exportBtn] });
    exportBtn.addEventListener("click", () => exportCsv(formParams(form), exportBtn));
    const results = h("div", { id: "results" }, h("p", { class: "muted" }, "加载中 Loading…"));
    view.replaceChildren(form, results);
    const q = apiFilters(params);
    q.set("limit", String(limit));
    q.set("offset", String(offset));
    // The page first; the total (a second pass over the match) fills in when it arrives.
    q.set("with_total", "false");
    let data;
    try {
      data = await api(`/api/v1/suspects?${q}`);
    } catch (err) {
      showError(results, err);
      return;
    }
    const rows = data.items.map((r) =>
      h(
        "tr",
        {
          class: `clickable${r.retracted ? " retracted" : ""}`,
          "data-id": r.suspect_id,
          onclick: () => go(`case/${encodeURIComponent(r.suspect_id)}`, apiFilters(params)),
        },
        h("td", {}, fmtTime(r.event_time)),
        h("td", {}, r.rule_title_zh, h("span", { class: "sub" }, r.rule_title)),
        h("td", {}, sevBadge(r.severity)),
        h("td", {}, r.region_code),
        h("td", { class: "mono" }, r.institution_id),
        h("td", { class: "mono" }, r.person_id),
        h("td", { class: "num" }, yuan(r.amount_at_risk_fen)),
        h(
          "td",
          {},
          statusBadge(r.case_status),
          r.retracted ? h("span", { class: "sub" }, "已撤销 Retracted") : null,
        ),
      ),
    );
    const page = Math.floor(offset / limit) + 1;
    const nav = (newOffset) => {
      const p = new URLSearchParams(params);
      p.set("offset", String(newOffset));
      go("suspects", p);
    };
    const known = data.total !== null;
    const totalEl = h(
      "strong",
      { id: "total", class: known ? "" : "muted" },
      known ? count(data.total) : "…",
    );
    const amountEl = h("strong", {}, known ? yuan(data.amount_at_risk_fen) : "…");
    const pageEl = h("span", {}, `第 ${page} 页 Page`);
    const nextBtn = h(
      "button",
      {
        type: "button",
        class: "secondary",
        disabled: data.items.length < limit,
        onclick: () => nav(offset + limit),
      },
      "下一页 Next ›",
    );
    const showTotal = (total, amount) => {
      totalEl.textContent = count(total);
      totalEl.className = "";
      amountEl.textContent = yuan(amount);
      pageEl.textContent = `第 ${page} / ${Math.max(1, Math.ceil(total / limit))} 页 Page`;
      nextBtn.disabled = offset + limit >= total;
    };
    // Suspects stored after this page was read that match its filters: a notice, loaded on click.
    const fresh = new Set();
    const notice = h("button", {
      type: "button",
      id: "new-suspects",
      class: "notice",
      hidden: true,
      onclick: () => {
        const p = new URLSearchParams(params);
        p.delete("offset");
        if (`#/suspects${[...p.keys()].length ? `?${p}` : ""}` === location.hash) route();
        else go("suspects", p);
      },
    });
    live(
      params,
      (name, data) => {
        if (name !== "suspects" || !notice.isConnected) return;
        for (const id of data.matching) fresh.add(id);
        if (fresh.size === 0) return;
        notice.textContent = `有 ${count(fresh.size)} 条新线索 ${count(fresh.size)} new suspect${fresh.size === 1 ? "" : "s"} · 点击加载 click to load`;
        notice.hidden = false;
      },
      results,
    );
    results.replaceChildren(
      h(
        "div",
        { class: "summary" },
        h("span", {}, "共 Total ", totalEl, " 条 suspects"),
        h("span", {}, "涉及金额 Amount at risk ", amountEl),
        notice,
      ),
      h(
        "table",
        { id: "suspects" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "结算时间 Settled at"),
            h("th", {}, "规则 Rule"),
            h("th", {}, "级别 Severity"),
            h("th", {}, "区划 Region"),
            h("th", {}, "机构 Institution"),
            h("th", {}, "人员 Person"),
            h("th", { class: "num" }, "金额 Amount"),
            h("th", {}, "状态 Status"),
          ),
        ),
        h(
          "tbody",
          {},
          rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "无结果 No results")),
        ),
      ),
      h(
        "div",
        { class: "pager" },
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            disabled: offset <= 0,
            onclick: () => nav(Math.max(0, offset - limit)),
          },
          "‹ 上一页 Prev",
        ),
        pageEl,
        nextBtn,
      ),
    );
    if (known) {
      showTotal(data.total, data.amount_at_risk_fen);
    } else {
      try {
        const cq = apiFilters(params);
        cq.delete("sort");
        const t = await api(`/api/v1/suspects/count?${cq}`);
        if (totalEl.isConnected) showTotal(t.total, t.amount_at_risk_fen);
      } catch (err) {
        if (err.status !== 401) totalEl.textContent = "?";
      }
    }
  }

  async function exportCsv(params, btn) {
    btn.disabled = true;
    try {
      const p = apiFilters(params);
      p.delete("sort");
      p.set("lang", "zh");
      const res = await api(`/api/v1/suspects/export.csv?${p}`, { raw: true });
      const blob = await res.blob();
      const disposition = res.headers.get("content-disposition") || "";
      const name = (/filename="([^"]+)"/.exec(disposition) || [])[1] || "suspects.csv";
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      toast("已导出 Exported");
    } catch (err) {
      if (err.status !== 401) toast(`导出失败 Export failed: ${err.message}`);
    } finally {
      btn.disabled = false;
    }
  }

  // --- evidence rendering ----------------------------------------------------------------
  function renderValue(key, v) {
    if (v === null || v === undefined) return h("span", { class: "muted" }, "—");
    if (Array.isArray(v)) {
      if (v.length === 0) return h("span", { class: "muted" }, "（无 none）");
      if (v.every((x) => x && typeof x === "object" && !Array.isArray(x))) return objectTable(v);
      return h(
        "span",
        {},
        v.map((x) => (typeof x === "object" ? JSON.stringify(x) : renderScalar(key, x))).join(", "),
      );
    }
    if (typeof v === "object") return h("div", { class: "nested" }, factList(v));
    return renderScalar(key, v);
  }
  function renderScalar(key, v) {
    if (typeof v === "number" && /_fen$/.test(key)) return yuan(v);
    if (typeof v === "boolean") return v ? "是 yes" : "否 no";
    if (ENUMS[key]?.[v]) return ENUMS[key][v];
    return String(v);
  }
  function factList(obj) {
    const dl = h("dl", { class: "facts" });
    for (const [k, v] of Object.entries(obj))
      dl.append(h("dt", {}, label(k)), h("dd", {}, renderValue(k, v)));
    return dl;
  }
  function objectTable(list) {
    const cols = [];
    for (const o of list) for (const k of Object.keys(o)) if (!cols.includes(k)) cols.push(k);
    return h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          cols.map((c) => h("th", { class: /_fen$/.test(c) ? "num" : undefined }, label(c))),
        ),
      ),
      h(
        "tbody",
        {},
        list.map((o) =>
          h(
            "tr",
            {},
            cols.map((c) => h("td", { class: /_fen$/.test(c) ? "num" : undefined }, renderValue(c, o[c]))),
          ),
        ),
      ),
    );
  }

  // --- case view -------------------------------------------------------------------------
  async function caseView(view, id, params) {
    view.replaceChildren(h("p", { class: "muted" }, "加载中 Loading…"));
    const c = await api(`/api/v1/suspects/${encodeURIComponent(id)}`);
    const sp = c.suspect;
    const back = h(
      "a",
      { href: `#/suspects${[...params.keys()].length ? `?${params}` : ""}`, class: "back" },
      "‹ 返回列表 Back to list",
    );
    const head = h(
      "div",
      { class: "card case-head" },
      h("h1", { id: "case-title" }, sp.rule_title_zh, " ", h("span", { class: "muted" }, sp.rule_title)),
      sevBadge(sp.severity),
      h("span", { id: "case-status" }, statusBadge(sp.case_status)),
      sp.retracted ? badge("st-new", "已撤销 Retracted") : null,
      h("span", { class: "amount" }, yuan(sp.amount_at_risk_fen)),
    );
    const facts = h(
      "div",
      { class: "card" },
      h("h2", {}, "线索 Suspect"),
      factList({
        suspect_id: sp.suspect_id,
        detector: `${sp.detector}${c.detector ? ` — ${c.detector.description}` : ""}`,
        rule: sp.rule,
        person_id: sp.person_id,
        institution_id: sp.institution_id,
        region_code: sp.region_code,
        event_time: fmtTime(sp.event_time),
        detected_at: fmtTime(sp.detected_at),
        settlement_ids: sp.settlement_ids.join(", "),
        detector_version: sp.detector_version,
      }),
    );
    const personLink = h(
      "a",
      { href: `#/suspects?person=${encodeURIComponent(sp.person_id)}` },
      "该人员的全部线索 All suspects of this person",
    );
    facts.append(h("p", {}, personLink));
    const evidence = h(
      "div",
      { class: "card evidence", id: "evidence" },
      h("h2", {}, "证据 Evidence"),
      factList(sp.evidence || {}),
    );
    const workflow = h("div", { class: "card" }, h("h2", {}, "处理 Case workflow"));
    if (state.me.can.change_status) {
      const sel = h(
        "select",
        { id: "new-status", name: "status" },
        ["under_review", "confirmed", "dismissed"].map((st) =>
          h("option", { value: st, selected: st === sp.case_status }, CASE_STATUS[st]),
        ),
      );
      const note = h("textarea", { id: "note", name: "note", maxlength: 4000, placeholder: "备注 Note" });
      const submit = h("button", { type: "submit", id: "save-status" }, "保存 Save");
      const form = h(
        "form",
        { class: "status-form" },
        h("label", {}, "新状态 New status ", sel),
        note,
        submit,
      );
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        submit.disabled = true;
        try {
          await api(`/api/v1/suspects/${encodeURIComponent(id)}/status`, {
            method: "POST",
            body: { status: sel.value, note: note.value },
          });
          toast("已保存 Saved");
          await caseView(view, id, params);
        } catch (err) {
          if (err.status !== 401) toast(`保存失败 Save failed: ${err.message}`);
          submit.disabled = false;
        }
      });
      workflow.append(form);
    } else {
      workflow.append(h("p", { class: "muted" }, "只读角色 Read-only role"));
    }
    workflow.append(
      h(
        "ul",
        { class: "history", id: "history" },
        c.history.length
          ? c.history
              .slice()
              .reverse()
              .map((e) =>
                h(
                  "li",
                  {},
                  statusBadge(e.status),
                  ` ${fmtTime(e.at)} UTC · ${e.user}`,
                  e.note ? h("div", {}, e.note) : null,
                ),
              )
          : h("li", { class: "muted" }, "暂无处理记录 No history yet"),
      ),
    );
    const involved = h("div", { class: "card" }, h("h2", {}, "涉及结算 Settlements involved"));
    for (const st of c.settlements) {
      involved.append(
        h(
          "h3",
          {},
          `${st.settlement_id} · ${ENUMS.visit_type[st.visit_type] || st.visit_type} · ${st.institution_name}`,
        ),
        factList({
          person_id: st.person_id,
          gender: st.gender,
          birth_date: st.birth_date,
          insurance_type: st.insurance_type,
          institution_id: st.institution_id,
          region_code: st.region_code,
          admission_date: st.admission_date,
          discharge_date: st.discharge_date,
          discharge_reason: st.discharge_reason,
          settled_at: fmtTime(st.settled_at),
          total_fen: st.total_fen,
          fund_paid_fen: st.fund_paid_fen,
          diagnoses: st.diagnoses,
        }),
        h("div", {}, objectTable(st.items.length ? st.items : [{}])),
      );
    }
    if (c.settlements_not_shown.length) {
      involved.append(
        h(
          "p",
          { class: "muted" },
          `未显示 Not shown (未归档或不在授权区划 not archived or outside your regions): ${c.settlements_not_shown.join(", ")}`,
        ),
      );
    }
    const deathCard = c.death
      ? h("div", { class: "card", id: "death" }, h("h2", {}, "死亡记录 Death record"), factList(c.death))
      : null;
    view.replaceChildren(
      ...[
        back,
        head,
        h("div", { class: "grid2" }, facts, workflow),
        evidence,
        timelineCard(c, sp),
        deathCard,
        involved,
      ].filter(Boolean),
    );
  }

  function timelineCard(c, sp) {
    const rows = c.timeline.rows;
    const card = h(
      "div",
      { class: "card", id: "timeline" },
      h("h2", {}, `结算时间线 Settlement timeline (±${c.timeline.window_days} 天 days)`),
    );
    if (c.timeline.hidden_outside_regions) {
      card.append(
        h(
          "p",
          { class: "muted" },
          `另有 ${c.timeline.hidden_outside_regions} 条结算在授权区划之外 settlements outside your regions are hidden`,
        ),
      );
    }
    if (!rows.length) {
      card.append(h("p", { class: "muted" }, "无归档结算 No archived settlements"));
      return card;
    }
    const day = (d) => Date.parse(`${d}T00:00:00Z`) / 86_400_000;
    const dates = rows.flatMap((r) => [day(r.admission_date), day(r.discharge_date)]);
    const eventDay = day(String(sp.event_time).slice(0, 10));
    dates.push(eventDay);
    if (c.death) dates.push(day(c.death.death_date));
    const min = Math.min(...dates) - 3;
    const max = Math.max(...dates) + 3;
    const W = 960;
    const L = 90;
    const lanes = ["INPATIENT", "OUTPATIENT", "PHARMACY"];
    const H = 40 + lanes.length * 34;
    const x = (d) => L + ((d - min) / Math.max(1, max - min)) * (W - L - 20);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "timeline" });
    lanes.forEach((lane, i) => {
      const y = 20 + i * 34;
      svg.append(
        s("text", { x: 4, y: y + 14 }, ENUMS.visit_type[lane]),
        s("line", { class: "axis", x1: L, x2: W - 20, y1: y + 26, y2: y + 26 }),
      );
    });
    const ticks = 6;
    for (let i = 0; i <= ticks; i++) {
      const d = min + ((max - min) * i) / ticks;
      const label = new Date(d * 86_400_000).toISOString().slice(0, 10);
      const tx = Math.min(W - 50, Math.max(L + 30, x(d)));
      svg.append(s("text", { x: tx, y: H - 4, "text-anchor": "middle" }, label));
    }
    for (const r of rows) {
      const lane = Math.max(0, lanes.indexOf(r.visit_type));
      const y = 20 + lane * 34;
      const cls = `${r.involved ? "involved" : ""} ${r.event_type === "REVERSAL" ? "reversal" : ""}`;
      const tip = s(
        "title",
        {},
        `${r.settlement_id} ${r.event_type} ${r.admission_date}→${r.discharge_date} ${r.institution_name} ${yuan(r.total_fen)}`,
      );
      if (r.visit_type === "INPATIENT") {
        const x1 = x(day(r.admission_date));
        const x2 = Math.max(x1 + 3, x(day(r.discharge_date)));
        svg.append(
          s("rect", { class: `stay ${cls}`, x: x1, y: y + 4, width: x2 - x1, height: 18, rx: 3 }, tip),
        );
      } else {
        svg.append(s("circle", { class: `dot ${cls}`, cx: x(day(r.admission_date)), cy: y + 13, r: 6 }, tip));
      }
    }
    svg.append(
      s(
        "line",
        { class: "event", x1: x(eventDay), x2: x(eventDay), y1: 10, y2: H - 18 },
        s("title", {}, `线索 suspect ${sp.event_time}`),
      ),
    );
    if (c.death) {
      const dx = x(day(c.death.death_date));
      svg.append(
        s("line", { class: "death", x1: dx, x2: dx, y1: 10, y2: H - 18 }),
        s("text", { x: dx + 3, y: 12 }, `死亡 death ${c.death.death_date}`),
      );
    }
    card.append(
      h("div", { class: "chart" }, svg),
      h(
        "table",
        { id: "timeline-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              "settlement_id",
              "event_type",
              "visit_type",
              "institution_name",
              "region_code",
              "admission_date",
              "discharge_date",
              "discharge_reason",
              "settled_at",
            ].map((k) => h("th", {}, label(k))),
            h("th", {}, "主诊断 Primary diagnosis"),
            h("th", { class: "num" }, label("total_fen")),
          ),
        ),
        h(
          "tbody",
          {},
          rows.map((r) =>
            h(
              "tr",
              { class: r.involved ? "involved" : undefined },
              h("td", { class: "mono" }, r.settlement_id),
              h(
                "td",
                {},
                renderScalar("event_type", r.event_type),
                r.original_settlement_id
                  ? h("span", { class: "sub" }, `→ ${r.original_settlement_id}`)
                  : null,
              ),
              h("td", {}, renderScalar("visit_type", r.visit_type)),
              h("td", {}, r.institution_name, h("span", { class: "sub mono" }, r.institution_id)),
              h("td", {}, r.region_code),
              h("td", {}, r.admission_date),
              h("td", {}, r.discharge_date),
              h("td", {}, r.discharge_reason ? renderScalar("discharge_reason", r.discharge_reason) : ""),
              h("td", {}, fmtTime(r.settled_at)),
              h("td", {}, r.primary_diagnoses.map((d) => `${d.code} ${d.name}`).join("; ")),
              h("td", { class: "num" }, yuan(r.total_fen)),
            ),
          ),
        ),
      ),
    );
    if (c.timeline.truncated) card.append(h("p", { class: "muted" }, "仅显示前 500 条 First 500 shown"));
    return card;
  }

  // --- charts ----------------------------------------------------------------------------
  // Charts are drawn at their natural pixel size (text stays 11px) and only shrink to fit.
  function barChart(rows, { id, valueFn, format, labelOf, max = 20 }) {
    const list = rows.slice(0, max);
    const W = 520;
    const rowH = 22;
    const L = 190;
    const H = Math.max(1, list.length) * rowH + 8;
    const top = Math.max(1, ...list.map(valueFn));
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", id });
    list.forEach((r, i) => {
      const y = 4 + i * rowH;
      const w = (valueFn(r) / top) * (W - L - 95);
      svg.append(
        s("text", { x: 0, y: y + 14 }, s("title", {}, labelOf(r)), truncate(labelOf(r), 26)),
        s(
          "rect",
          { class: "bar", x: L, y: y + 3, width: Math.max(1, w), height: rowH - 7, rx: 2 },
          s("title", {}, `${labelOf(r)}: ${format(valueFn(r))}`),
        ),
        s("text", { x: L + w + 6, y: y + 14 }, format(valueFn(r))),
      );
    });
    if (!list.length) svg.append(s("text", { x: 0, y: 16 }, "无数据 No data"));
    return svg;
  }

  /** Every month from the first to the last with data, empty months as zero. */
  function fillMonths(rows) {
    if (!rows.length) return rows;
    const byKey = new Map(rows.map((r) => [r.key, r]));
    const [y0, m0] = rows[0].key.split("-").map(Number);
    const [y1, m1] = rows[rows.length - 1].key.split("-").map(Number);
    const out = [];
    let y = y0;
    let m = m0;
    while ((y < y1 || (y === y1 && m <= m1)) && out.length < 600) {
      const key = `${y}-${String(m).padStart(2, "0")}`;
      out.push(byKey.get(key) || { key, count: 0, amount_at_risk_fen: 0 });
      m++;
      if (m > 12) {
        m = 1;
        y++;
      }
    }
    return out;
  }

  function columnChart(input, { id }) {
    const rows = fillMonths(input);
    const n = Math.max(1, rows.length);
    const bw = Math.min(64, Math.max(14, 900 / n));
    const W = Math.max(360, n * bw + 20);
    const H = 230;
    const B = 34;
    const T = 36;
    const L = 10;
    const topCount = Math.max(1, ...rows.map((r) => r.count));
    const topAmount = Math.max(1, ...rows.map((r) => r.amount_at_risk_fen));
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", id });
    svg.append(s("line", { class: "axis", x1: L, x2: W - L, y1: H - B, y2: H - B }));
    const every = Math.ceil(n / Math.floor(W / 60));
    rows.forEach((r, i) => {
      const x0 = L + i * bw;
      const hc = ((H - B - T) * r.count) / topCount;
      const ha = ((H - B - T) * r.amount_at_risk_fen) / topAmount;
      const half = Math.max(2, bw / 2 - 3);
      svg.append(
        s(
          "rect",
          { class: "bar", x: x0 + 2, y: H - B - hc, width: half, height: hc },
          s("title", {}, `${r.key}: ${count(r.count)} 条 suspects`),
        ),
        s(
          "rect",
          { class: "bar2", x: x0 + 2 + half + 1, y: H - B - ha, width: half, height: ha },
          s("title", {}, `${r.key}: ${yuan(r.amount_at_risk_fen)}`),
        ),
      );
      if (bw >= 40 && r.count > 0) {
        svg.append(
          s("text", { x: x0 + 2 + half / 2, y: H - B - hc - 3, "text-anchor": "middle" }, count(r.count)),
        );
      }
      if (i % every === 0) svg.append(s("text", { x: x0 + 2, y: H - B + 14 }, r.key));
    });
    svg.append(
      s("rect", { class: "bar", x: L, y: 4, width: 10, height: 10 }),
      s("text", { x: L + 14, y: 13 }, "数量 Count"),
      s("rect", { class: "bar2", x: L + 90, y: 4, width: 10, height: 10 }),
      s("text", { x: L + 104, y: 13 }, "金额 Amount at risk"),
    );
    return svg;
  }
  const truncate = (t, n) => (t.length > n ? `${t.slice(0, n - 1)}…` : t);

  async function chartsView(view, params) {
    const form = filterForm(params, { onSubmit: (p) => go("charts", p), withSort: false });
    const body = h("div", {}, h("p", { class: "muted" }, "加载中 Loading…"));
    view.replaceChildren(form, body);
    const q = apiFilters(params);
    q.delete("sort");
    q.set("top", "15");
    let a;
    try {
      a = await api(`/api/v1/aggregates?${q}`);
    } catch (err) {
      showError(body, err);
      return;
    }
    renderCharts(body, a);
    // The counts move as suspects are stored: the stream says when the filters' total changed,
    // and the charts are read again (at most every two seconds).
    let shown = a.total;
    let timer = null;
    live(
      params,
      (_name, data) => {
        if (data.total === undefined || data.total === shown || timer) return;
        timer = setTimeout(async () => {
          timer = null;
          if (!body.isConnected) return;
          try {
            const next = await api(`/api/v1/aggregates?${q}`);
            if (!body.isConnected) return;
            shown = next.total;
            renderCharts(body, next);
          } catch (err) {
            if (err.status !== 401) toast(`刷新失败 Refresh failed: ${err.message}`);
          }
        }, 2000);
      },
      body,
    );
  }

  function renderCharts(body, a) {
    const g = a.groups;
    const ruleLabel = (r) => `${r.title_zh}`;
    body.replaceChildren(
      h(
        "div",
        { class: "summary" },
        h("span", {}, "共 Total ", h("strong", { id: "chart-total" }, count(a.total)), " 条 suspects"),
        h("span", {}, "涉及金额 Amount at risk ", h("strong", {}, yuan(a.amount_at_risk_fen))),
      ),
      h(
        "div",
        { class: "grid2" },
        h(
          "div",
          { class: "card chart" },
          h("h2", {}, "按规则 · 数量 By rule · count"),
          barChart(g.rule, {
            id: "chart-rule-count",
            valueFn: (r) => r.count,
            format: count,
            labelOf: ruleLabel,
          }),
        ),
        h(
          "div",
          { class: "card chart" },
          h("h2", {}, "按规则 · 金额 By rule · amount at risk"),
          barChart(g.rule, {
            id: "chart-rule-amount",
            valueFn: (r) => r.amount_at_risk_fen,
            format: yuan,
            labelOf: ruleLabel,
          }),
        ),
        h(
          "div",
          { class: "card chart" },
          h("h2", {}, `按机构 (前 ${a.top}) · 金额 By institution (top ${a.top}) · amount`),
          barChart(g.institution, {
            id: "chart-institution",
            valueFn: (r) => r.amount_at_risk_fen,
            format: yuan,
            labelOf: (r) => (r.name ? `${r.name} ${r.key}` : r.key),
          }),
        ),
        h(
          "div",
          { class: "card chart" },
          h("h2", {}, "按检测器 · 数量 By detector · count"),
          barChart(g.detector, {
            id: "chart-detector",
            valueFn: (r) => r.count,
            format: count,
            labelOf: (r) => r.key,
          }),
          h("h2", {}, "按处理状态 By case status"),
          barChart(g.status, {
            id: "chart-status",
            valueFn: (r) => r.count,
            format: count,
            labelOf: (r) => CASE_STATUS[r.key] || r.key,
          }),
        ),
      ),
      h(
        "div",
        { class: "card chart" },
        h("h2", {}, "按月份 By month (结算时间 settled at)"),
        columnChart(g.month, { id: "chart-month" }),
      ),
    );
  }

  // --- audit -----------------------------------------------------------------------------
  async function auditView(view, params) {
    const form = h(
      "form",
      { class: "filters card" },
      h("label", {}, "用户 User", h("input", { name: "who", value: params.get("who") || "" })),
      h(
        "label",
        {},
        "接口 Route",
        h("input", { name: "route", value: params.get("route") || "", placeholder: "GET /api/v1/suspects" }),
      ),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "查询 Search")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      go("audit", formParams(form));
    });
    const body = h("div", {});
    view.replaceChildren(form, body);
    const q = new URLSearchParams();
    for (const k of ["who", "route", "offset"]) if (params.get(k)) q.set(k, params.get(k));
    q.set("limit", "100");
    let a;
    try {
      a = await api(`/api/v1/audit?${q}`);
    } catch (err) {
      showError(body, err);
      return;
    }
    body.replaceChildren(
      h("p", {}, `共 ${count(a.total)} 条 entries`),
      h(
        "table",
        { id: "audit" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["时间 At (UTC)", "用户 Who", "来源 From", "接口 Route", "行数 Rows", "条件 Filters"].map((t) =>
              h("th", {}, t),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          a.items.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, fmtTime(r.at)),
              h("td", {}, r.who),
              // The address and the token's label; the user agent on hover.
              h(
                "td",
                { class: "mono", title: r.user_agent || "" },
                [r.address, r.token_label].filter(Boolean).join(" · "),
              ),
              h("td", { class: "mono" }, r.route),
              h("td", { class: "num" }, count(r.rows)),
              h("td", { class: "mono" }, JSON.stringify(r.filters)),
            ),
          ),
        ),
      ),
    );
  }

  // --- start -------------------------------------------------------------------------------
  (async () => {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token && (await login(token))) route();
    else logout("");
  })();
})();
