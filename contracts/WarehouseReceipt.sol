// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @notice The part of EnterpriseRegistry that WarehouseReceipt relies on.
interface IReceiptRegistry {
    function isActive(address account) external view returns (bool);
    function hasRole(address account, uint32 role) external view returns (bool);
    function enterpriseByPrefix(string calldata prefix) external view returns (address);
}

/// @dev ERC-165.
interface IReceiptERC165 {
    function supportsInterface(bytes4 interfaceId) external view returns (bool);
}

/// @dev ERC-721 (without the metadata extension; ERC-165 id 0x80ac58cd).
interface IReceiptERC721 is IReceiptERC165 {
    event Transfer(address indexed _from, address indexed _to, uint256 indexed _tokenId);
    event Approval(address indexed _owner, address indexed _approved, uint256 indexed _tokenId);
    event ApprovalForAll(address indexed _owner, address indexed _operator, bool _approved);

    function balanceOf(address _owner) external view returns (uint256);
    function ownerOf(uint256 _tokenId) external view returns (address);
    function safeTransferFrom(address _from, address _to, uint256 _tokenId, bytes calldata data) external;
    function safeTransferFrom(address _from, address _to, uint256 _tokenId) external;
    function transferFrom(address _from, address _to, uint256 _tokenId) external;
    function approve(address _approved, uint256 _tokenId) external;
    function setApprovalForAll(address _operator, bool _approved) external;
    function getApproved(uint256 _tokenId) external view returns (address);
    function isApprovedForAll(address _owner, address _operator) external view returns (bool);
}

/// @title WarehouseReceipt
/// @notice Electronic warehouse receipts for steel coils as ERC-721 tokens, pledged to banks.
///
/// * **Elements** after GB/T 30332 (warehouse receipt elements and format): depositor, warehouse
///   (the issuer), storage location, goods (coil identifiers `88.x.y/suffix`, one grade, per coil
///   dimensions and net weight in kg), issue date (block time), end of the storage period and an
///   insurance reference.
/// * **Issued only by an active WAREHOUSE member** to an active member depositor, for coils whose
///   identifiers carry a registered enterprise prefix (`EnterpriseRegistry.enterpriseByPrefix`).
/// * **One coil, one live receipt.** `receiptOfCoil(keccak256(lower-case identifier))` names the
///   live receipt holding a coil; issuing (or splitting into) a receipt for a coil that is already in
///   a live receipt is refused (`CoilAlreadyReceipted`). Identifiers are compared ASCII-case-
///   insensitively and may not contain spaces or control characters, so no spelling of the same
///   identifier slips past the rule. Only `deliver` (goods leave the warehouse) and `split` (coils
///   move into the two new receipts) free a coil from a receipt.
/// * **One pledge.** `pledge(receipt, bank, loanAmount, currency, maturity)` by the holder records a
///   lien for an active BANK; a second pledge of a pledged receipt is refused (`AlreadyPledged`).
///   While pledged, transfer, split and delivery are refused (`Pledged`) until the bank releases
///   the lien (`release`, on repayment) or enforces it (`enforce`, at or after maturity: title moves
///   to the bank, the lien ends).
/// * **Only the holder moves a receipt**: no approvals or operators (`OperatorsUnsupported`); to
///   active members only (`NotMember`).
/// * Every state change emits an event and is appended to the receipt's history (`getHistory`).
/// * Every refusal is a named custom error (never a Panic).
contract WarehouseReceipt is IReceiptERC721 {
    uint32 public constant BANK = 8;
    uint32 public constant WAREHOUSE = 64;
    /// @notice Most coils on one receipt (keeps every loop bounded).
    uint256 public constant MAX_COILS = 64;
    /// @notice Longest identifier / text element in bytes.
    uint256 public constant MAX_TEXT = 200;
    /// @notice Heaviest coil in kg (1,000,000 t): 64 of them still sum below 2^64, so totals never overflow.
    uint64 public constant MAX_COIL_WEIGHT_KG = 1e9;

    enum Status {
        None,
        Live,
        Pledged,
        Delivered,
        Split
    }

    enum Action {
        Issue,
        Pledge,
        Release,
        Enforce,
        Transfer,
        Split,
        Deliver
    }

    /// GB/T 30332 elements of one receipt (goods in `getCoils`).
    struct Receipt {
        address depositor;
        address warehouse;
        address owner;
        string location;
        string grade;
        string insuranceReference;
        uint64 issuedAt;
        uint64 storageUntil;
        uint64 netWeightKg;
        uint256 parent;
        Status status;
    }

    struct Coil {
        string identifier;
        string dimensions;
        uint64 netWeightKg;
    }

    /// What `issue` takes: the GB/T 30332 elements the warehouse states.
    struct IssueRequest {
        address depositor;
        string location;
        string grade;
        string insuranceReference;
        uint64 storageUntil;
        Coil[] coils;
    }

    struct Pledge {
        address bank;
        uint256 loanAmount;
        bytes3 currency;
        uint64 maturity;
        uint64 pledgedAt;
    }

    struct Entry {
        Action action;
        address actor;
        address counterparty;
        uint256 amount;
        uint256 relatedReceipt;
        uint64 timestamp;
        uint64 blockNumber;
    }

    IReceiptRegistry private immutable _registry;
    uint256 public receiptCount;

    mapping(uint256 => Receipt) private _receipts;
    mapping(uint256 => Coil[]) private _coils;
    mapping(uint256 => Pledge) private _pledges;
    mapping(uint256 => Entry[]) private _history;
    mapping(bytes32 => uint256) private _receiptOfCoil;
    mapping(address => uint256) private _balances;

    event Issued(
        uint256 indexed receiptId, address indexed warehouse, address indexed depositor, string grade,
        uint64 netWeightKg, uint256 coilCount
    );
    event CoilReceipted(uint256 indexed receiptId, bytes32 indexed coilKey, string identifier);
    event PledgeRecorded(
        uint256 indexed receiptId, address indexed holder, address indexed bank, uint256 loanAmount, bytes3 currency,
        uint64 maturity
    );
    event PledgeReleased(uint256 indexed receiptId, address indexed bank, address indexed holder);
    event PledgeEnforced(uint256 indexed receiptId, address indexed bank, address indexed formerHolder);
    event Delivered(uint256 indexed receiptId, address indexed holder, address indexed warehouse);
    event SplitInto(uint256 indexed receiptId, uint256 indexed firstReceiptId, uint256 indexed secondReceiptId);

    error ZeroAddress();
    error UnknownReceipt(uint256 receiptId);
    error NotWarehouse(address account);
    error NotBank(address account);
    error NotMember(address account);
    error NotHolder(address account, address holder);
    error OperatorsUnsupported();
    error WrongOwner(uint256 tokenId, address owner, address from);
    error NotReceiver(address to);
    error ReceiptClosed(uint256 receiptId, Status status);
    error Pledged(uint256 receiptId, address bank);
    error AlreadyPledged(uint256 receiptId, address bank);
    error NotPledged(uint256 receiptId);
    error NotMatured(uint256 tokenId, uint64 maturity);
    error MaturityInPast(uint64 maturity, uint256 nowSeconds);
    error ZeroValue();
    error InvalidCurrency(bytes3 currency);
    error NoCoils();
    error TooManyCoils(uint256 count, uint256 maxCoils);
    error InvalidCoilIdentifier(string identifier);
    error UnknownCoilPrefix(string identifier);
    error CoilAlreadyReceipted(string identifier, uint256 receiptId);
    error ZeroWeight(string identifier);
    error WeightTooLarge(string identifier, uint64 netWeightKg, uint64 maxKg);
    error EmptyElement(string element);
    error ElementTooLong(string element, uint256 maxBytes);
    error StoragePeriodEnded(uint64 storageUntil, uint256 nowSeconds);
    error InvalidSplit(uint256 receiptId, uint256 coilCount);

    constructor(address registry) {
        if (registry == address(0)) revert ZeroAddress();
        _registry = IReceiptRegistry(registry);
    }

    function enterpriseRegistry() external view returns (address) {
        return address(_registry);
    }

    // ------------------------------------------------------------ ERC-165 / ERC-721 reads
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IReceiptERC165).interfaceId || interfaceId == type(IReceiptERC721).interfaceId;
    }

    function balanceOf(address owner) external view returns (uint256) {
        if (owner == address(0)) revert ZeroAddress();
        return _balances[owner];
    }

    /// @notice Holder of a receipt (also of a closed one: who held it last).
    function ownerOf(uint256 receiptId) public view returns (address) {
        return _known(receiptId).owner;
    }

    function getApproved(uint256 receiptId) external view returns (address) {
        _known(receiptId);
        return address(0);
    }

    function isApprovedForAll(address, address) external pure returns (bool) {
        return false;
    }

    function approve(address, uint256) external pure {
        revert OperatorsUnsupported();
    }

    function setApprovalForAll(address, bool) external pure {
        revert OperatorsUnsupported();
    }

    // ------------------------------------------------------------ reads
    function getReceipt(uint256 receiptId) external view returns (Receipt memory) {
        return _known(receiptId);
    }

    function getCoils(uint256 receiptId) external view returns (Coil[] memory) {
        _known(receiptId);
        return _coils[receiptId];
    }

    /// @notice The live lien of a pledged receipt (all zero when not pledged).
    function getPledge(uint256 receiptId) external view returns (Pledge memory) {
        _known(receiptId);
        return _pledges[receiptId];
    }

    /// @notice Every state change of a receipt, oldest first (issue, pledge, release, …).
    function getHistory(uint256 receiptId) external view returns (Entry[] memory) {
        _known(receiptId);
        return _history[receiptId];
    }

    /// @notice Key of a coil identifier: keccak256 of its ASCII-lower-cased bytes.
    function coilKey(string calldata identifier) public pure returns (bytes32) {
        return keccak256(_lower(bytes(identifier)));
    }

    /// @notice The live receipt holding the coil with this key (0 when none).
    function receiptOfCoil(bytes32 key) external view returns (uint256) {
        return _receiptOfCoil[key];
    }

    /// @notice The live receipt holding the coil `identifier` (0 when none).
    function receiptOfIdentifier(string calldata identifier) external view returns (uint256) {
        return _receiptOfCoil[coilKey(identifier)];
    }

    // ------------------------------------------------------------ business
    /// @notice Issue a receipt for coils the calling warehouse holds, to member `r.depositor`.
    /// Caller: an active WAREHOUSE member. Refuses a coil already in a live receipt (`CoilAlreadyReceipted`).
    function issue(IssueRequest calldata r) external returns (uint256 receiptId) {
        if (!_registry.hasRole(msg.sender, WAREHOUSE)) revert NotWarehouse(msg.sender);
        _member(r.depositor);
        _text("location", r.location);
        _text("grade", r.grade);
        if (bytes(r.insuranceReference).length > MAX_TEXT) revert ElementTooLong("insuranceReference", MAX_TEXT);
        if (r.storageUntil <= block.timestamp) revert StoragePeriodEnded(r.storageUntil, block.timestamp);
        uint256 n = r.coils.length;
        if (n == 0) revert NoCoils();
        if (n > MAX_COILS) revert TooManyCoils(n, MAX_COILS);

        receiptId = ++receiptCount;
        uint64 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            Coil calldata c = r.coils[i];
            _checkCoil(c.identifier);
            if (c.netWeightKg == 0) revert ZeroWeight(c.identifier);
            if (c.netWeightKg > MAX_COIL_WEIGHT_KG) revert WeightTooLarge(c.identifier, c.netWeightKg, MAX_COIL_WEIGHT_KG);
            if (bytes(c.dimensions).length > MAX_TEXT) revert ElementTooLong("dimensions", MAX_TEXT);
            _bindCoil(receiptId, c.identifier);
            _coils[receiptId].push(c);
            total += c.netWeightKg;
        }
        _receipts[receiptId] = Receipt({
            depositor: r.depositor,
            warehouse: msg.sender,
            owner: r.depositor,
            location: r.location,
            grade: r.grade,
            insuranceReference: r.insuranceReference,
            issuedAt: uint64(block.timestamp),
            storageUntil: r.storageUntil,
            netWeightKg: total,
            parent: 0,
            status: Status.Live
        });
        _balances[r.depositor] += 1;
        emit Transfer(address(0), r.depositor, receiptId);
        emit Issued(receiptId, msg.sender, r.depositor, r.grade, total, n);
        _log(receiptId, Action.Issue, r.depositor, total, 0);
    }

    /// @notice The holder pledges a live receipt to an active bank for a loan of `loanAmount` (smallest
    /// currency unit) in ISO 4217 `currency`, maturing at `maturity` (unix seconds).
    function pledge(uint256 receiptId, address bank, uint256 loanAmount, bytes3 currency, uint64 maturity) external {
        Receipt storage rc = _known(receiptId);
        if (rc.status == Status.Pledged) revert AlreadyPledged(receiptId, _pledges[receiptId].bank);
        _live(receiptId, rc);
        _holder(rc);
        if (!_registry.hasRole(bank, BANK)) revert NotBank(bank);
        if (loanAmount == 0) revert ZeroValue();
        for (uint256 i = 0; i < 3; ++i) {
            if (currency[i] < "A" || currency[i] > "Z") revert InvalidCurrency(currency);
        }
        if (maturity <= block.timestamp) revert MaturityInPast(maturity, block.timestamp);
        _pledges[receiptId] = Pledge({
            bank: bank, loanAmount: loanAmount, currency: currency, maturity: maturity, pledgedAt: uint64(block.timestamp)
        });
        rc.status = Status.Pledged;
        emit PledgeRecorded(receiptId, rc.owner, bank, loanAmount, currency, maturity);
        _log(receiptId, Action.Pledge, bank, loanAmount, 0);
    }

    /// @notice The pledgee bank releases its lien (the loan was repaid).
    function release(uint256 receiptId) external {
        Receipt storage rc = _known(receiptId);
        Pledge storage p = _pledgeOf(receiptId, rc);
        if (msg.sender != p.bank) revert NotBank(msg.sender);
        address bank = p.bank;
        delete _pledges[receiptId];
        rc.status = Status.Live;
        emit PledgeReleased(receiptId, bank, rc.owner);
        _log(receiptId, Action.Release, rc.owner, 0, 0);
    }

    /// @notice The pledgee bank enforces its lien at or after maturity: title moves to the bank.
    function enforce(uint256 receiptId) external {
        Receipt storage rc = _known(receiptId);
        Pledge storage p = _pledgeOf(receiptId, rc);
        if (msg.sender != p.bank) revert NotBank(msg.sender);
        if (block.timestamp < p.maturity) revert NotMatured(receiptId, p.maturity);
        if (!_registry.isActive(msg.sender)) revert NotMember(msg.sender);
        address former = rc.owner;
        uint256 loan = p.loanAmount;
        delete _pledges[receiptId];
        rc.status = Status.Live;
        _move(receiptId, rc, msg.sender);
        emit PledgeEnforced(receiptId, msg.sender, former);
        _log(receiptId, Action.Enforce, former, loan, 0);
    }

    function transferFrom(address from, address to, uint256 receiptId) public {
        Receipt storage rc = _known(receiptId);
        if (from != rc.owner) revert WrongOwner(receiptId, rc.owner, from);
        _unencumbered(receiptId, rc);
        _holder(rc);
        _member(to);
        _move(receiptId, rc, to);
        _log(receiptId, Action.Transfer, to, 0, 0);
    }

    function safeTransferFrom(address from, address to, uint256 receiptId) external {
        safeTransferFrom(from, to, receiptId, "");
    }

    /// @dev Receipts go to member enterprises' accounts; a contract recipient must accept ERC-721.
    function safeTransferFrom(address from, address to, uint256 receiptId, bytes memory data) public {
        transferFrom(from, to, receiptId);
        if (to.code.length == 0) return;
        try IReceiptERC721Receiver(to).onERC721Received(msg.sender, from, receiptId, data) returns (bytes4 answer) {
            if (answer != IReceiptERC721Receiver.onERC721Received.selector) revert NotReceiver(to);
        } catch {
            revert NotReceiver(to);
        }
    }

    /// @notice The holder splits a live, unpledged receipt in two: the coils at `coilIndexes` go to the
    /// first new receipt, the others to the second; both keep every other element and belong to the
    /// holder; the original is closed (`Split`).
    function split(uint256 receiptId, uint256[] calldata coilIndexes) external returns (uint256 first, uint256 second) {
        Receipt storage rc = _known(receiptId);
        _unencumbered(receiptId, rc);
        _holder(rc);
        Coil[] storage coils = _coils[receiptId];
        uint256 n = coils.length;
        uint256 chosen = 0;
        bool[] memory pick = new bool[](n);
        for (uint256 i = 0; i < coilIndexes.length; ++i) {
            uint256 k = coilIndexes[i];
            if (k >= n || pick[k]) revert InvalidSplit(receiptId, n);
            pick[k] = true;
            ++chosen;
        }
        if (chosen == 0 || chosen == n) revert InvalidSplit(receiptId, n);
        rc.status = Status.Split;
        _balances[rc.owner] -= 1;
        first = _child(receiptId, rc, coils, pick, true);
        second = _child(receiptId, rc, coils, pick, false);
        emit SplitInto(receiptId, first, second);
        _log(receiptId, Action.Split, rc.owner, first, second);
    }

    /// @notice The holder surrenders the receipt and takes the goods out of the warehouse: the receipt
    /// closes (`Delivered`) and its coils are free for a new receipt.
    function deliver(uint256 receiptId) external {
        Receipt storage rc = _known(receiptId);
        _unencumbered(receiptId, rc);
        _holder(rc);
        Coil[] storage coils = _coils[receiptId];
        for (uint256 i = 0; i < coils.length; ++i) {
            delete _receiptOfCoil[keccak256(_lower(bytes(coils[i].identifier)))];
        }
        rc.status = Status.Delivered;
        _balances[rc.owner] -= 1;
        emit Delivered(receiptId, rc.owner, rc.warehouse);
        emit Transfer(rc.owner, address(0), receiptId);
        _log(receiptId, Action.Deliver, rc.warehouse, rc.netWeightKg, 0);
    }

    // ------------------------------------------------------------ internals
    function _known(uint256 receiptId) private view returns (Receipt storage rc) {
        rc = _receipts[receiptId];
        if (rc.status == Status.None) revert UnknownReceipt(receiptId);
    }

    function _live(uint256 receiptId, Receipt storage rc) private view {
        if (rc.status != Status.Live && rc.status != Status.Pledged) revert ReceiptClosed(receiptId, rc.status);
    }

    /// Live and not pledged: what transfer, split and delivery need.
    function _unencumbered(uint256 receiptId, Receipt storage rc) private view {
        _live(receiptId, rc);
        if (rc.status == Status.Pledged) revert Pledged(receiptId, _pledges[receiptId].bank);
    }

    function _pledgeOf(uint256 receiptId, Receipt storage rc) private view returns (Pledge storage) {
        _live(receiptId, rc);
        if (rc.status != Status.Pledged) revert NotPledged(receiptId);
        return _pledges[receiptId];
    }

    function _holder(Receipt storage rc) private view {
        if (msg.sender != rc.owner) revert NotHolder(msg.sender, rc.owner);
        if (!_registry.isActive(msg.sender)) revert NotMember(msg.sender);
    }

    function _member(address account) private view {
        if (account == address(0)) revert ZeroAddress();
        if (!_registry.isActive(account)) revert NotMember(account);
    }

    function _text(string memory element, string calldata value) private pure {
        if (bytes(value).length == 0) revert EmptyElement(element);
        if (bytes(value).length > MAX_TEXT) revert ElementTooLong(element, MAX_TEXT);
    }

    /// An identifier `88.<industry>.<n>/<suffix>` of printable ASCII without spaces, whose prefix is
    /// a registered enterprise's.
    function _checkCoil(string calldata identifier) private view {
        bytes calldata b = bytes(identifier);
        if (b.length == 0 || b.length > MAX_TEXT) revert InvalidCoilIdentifier(identifier);
        uint256 slash = b.length;
        for (uint256 i = 0; i < b.length; ++i) {
            if (b[i] <= 0x20 || b[i] >= 0x7f) revert InvalidCoilIdentifier(identifier);
            if (b[i] == "/" && slash == b.length) slash = i;
        }
        if (slash == 0 || slash + 1 >= b.length) revert InvalidCoilIdentifier(identifier);
        if (_registry.enterpriseByPrefix(identifier[:slash]) == address(0)) revert UnknownCoilPrefix(identifier);
    }

    function _bindCoil(uint256 receiptId, string memory identifier) private {
        bytes32 key = keccak256(_lower(bytes(identifier)));
        uint256 existing = _receiptOfCoil[key];
        if (existing != 0) revert CoilAlreadyReceipted(identifier, existing);
        _receiptOfCoil[key] = receiptId;
        emit CoilReceipted(receiptId, key, identifier);
    }

    function _child(uint256 parentId, Receipt storage rc, Coil[] storage coils, bool[] memory pick, bool picked)
        private
        returns (uint256 id)
    {
        id = ++receiptCount;
        uint64 total = 0;
        for (uint256 i = 0; i < coils.length; ++i) {
            if (pick[i] != picked) continue;
            Coil storage c = coils[i];
            _receiptOfCoil[keccak256(_lower(bytes(c.identifier)))] = id;
            emit CoilReceipted(id, keccak256(_lower(bytes(c.identifier))), c.identifier);
            _coils[id].push(c);
            total += c.netWeightKg;
        }
        _receipts[id] = Receipt({
            depositor: rc.depositor,
            warehouse: rc.warehouse,
            owner: rc.owner,
            location: rc.location,
            grade: rc.grade,
            insuranceReference: rc.insuranceReference,
            issuedAt: uint64(block.timestamp),
            storageUntil: rc.storageUntil,
            netWeightKg: total,
            parent: parentId,
            status: Status.Live
        });
        _balances[rc.owner] += 1;
        emit Transfer(address(0), rc.owner, id);
        emit Issued(id, rc.warehouse, rc.owner, rc.grade, total, _coils[id].length);
        _log(id, Action.Issue, rc.owner, total, parentId);
    }

    function _move(uint256 receiptId, Receipt storage rc, address to) private {
        address from = rc.owner;
        _balances[from] -= 1;
        _balances[to] += 1;
        rc.owner = to;
        emit Transfer(from, to, receiptId);
    }

    function _log(uint256 receiptId, Action action, address counterparty, uint256 amount, uint256 related) private {
        _history[receiptId].push(Entry({
            action: action,
            actor: msg.sender,
            counterparty: counterparty,
            amount: amount,
            relatedReceipt: related,
            timestamp: uint64(block.timestamp),
            blockNumber: uint64(block.number)
        }));
    }

    function _lower(bytes memory b) private pure returns (bytes memory out) {
        out = new bytes(b.length);
        for (uint256 i = 0; i < b.length; ++i) {
            bytes1 ch = b[i];
            out[i] = (ch >= "A" && ch <= "Z") ? bytes1(uint8(ch) + 32) : ch;
        }
    }
}

interface IReceiptERC721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4);
}
