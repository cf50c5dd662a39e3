#!/usr/bin/env node
// The CLI is TypeScript run through tsx's loader, so a checkout works right after `npm install` with no build step.
import { register } from "tsx/esm/api";

register();
await import("../services/cli/main.ts");
