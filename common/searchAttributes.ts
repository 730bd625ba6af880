// Custom search attributes the upgrade workflow upserts, so the Web UI's list page can filter
// and show where each upgrade stands. The dev-server script registers exactly these.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const UpgradePhase = defineSearchAttributeKey('UpgradePhase', SearchAttributeType.KEYWORD);
export const UpgradeStep = defineSearchAttributeKey('UpgradeStep', SearchAttributeType.KEYWORD);
export const UpgradeStatus = defineSearchAttributeKey('UpgradeStatus', SearchAttributeType.KEYWORD);
export const NovaCloud = defineSearchAttributeKey('NovaCloud', SearchAttributeType.KEYWORD);

/** Name and CLI type of each attribute, for `temporal operator search-attribute create`. */
export const SEARCH_ATTRIBUTES: ReadonlyArray<{
  name: string;
  type: 'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';
}> = [
  { name: UpgradePhase.name, type: 'Keyword' },
  { name: UpgradeStep.name, type: 'Keyword' },
  { name: UpgradeStatus.name, type: 'Keyword' },
  { name: NovaCloud.name, type: 'Keyword' },
];
